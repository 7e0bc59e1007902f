"""Thread pools per framework, pure: CPUs // workers under pytest-xdist, untouched in a serial run."""

from __future__ import annotations

import pytest

from pytest_xframe.check import threads


def test_auto_gives_each_xdist_worker_its_share_of_the_cpus() -> None:
    assert threads.resolve("auto", workers=2, cpus=8) == 4
    assert threads.resolve("auto", workers=3, cpus=8) == 2
    assert threads.resolve("auto", workers=16, cpus=8) == 1  # never zero
    assert threads.resolve(3, workers=2, cpus=8) == 3  # an explicit count wins
    assert threads.resolve(0, workers=2, cpus=8) is None  # 0: the frameworks' defaults


def test_auto_leaves_a_serial_run_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert threads.resolve("auto") is None
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert threads.resolve("auto") == max(1, threads.cpu_count() // 2)


@pytest.mark.parametrize("raw", ["many", "-1", "1.5", ""])
def test_bad_values_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        threads.parse(raw)


def test_onnxruntime_session_gets_the_count(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from pytest_xframe.backends.onnxruntime.runner import make_session

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    path = tmp_path / "relu.onnx"
    opsets = [helper.make_opsetid("", 17)]
    # the oldest IR the opset allows: onnx 1.23 writes IR 14 by default, ONNX Runtime 1.30 reads up to 13
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    onnx.save(model, str(path))
    assert make_session(str(path), threads=1).session.get_session_options().intra_op_num_threads == 1
    assert make_session(str(path)).session.get_session_options().intra_op_num_threads == 0  # ORT decides


def test_openmp_waits_passively_only_in_xdist_workers_with_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    env: dict[str, str] = {}
    assert threads.quiet_openmp("auto", env) and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert not threads.quiet_openmp("auto", env) and env["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's choice
    for setting in ("0", "2"):  # a fixed count, or the frameworks' defaults: nothing changes
        env = {}
        assert not threads.quiet_openmp(setting, env) and not env
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    env = {}
    assert not threads.quiet_openmp("auto", env) and not env  # a serial run keeps spinning
