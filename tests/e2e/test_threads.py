"""Thread pools per framework: CPUs // workers under pytest-xdist, untouched in a serial run.

The xdist case (two real workers) is in test_plugin.py's xdist test, which runs checks anyway.
"""

from __future__ import annotations

import pytest

from pytest_xframe import threads


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


def test_bad_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--xframe-threads=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--xframe-threads: expected 'auto', 0 or a thread count, got 'many'*"])


def test_bad_ini_value_names_the_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nxframe_threads = lots\n")
    result = pytester.runpytest()
    assert result.ret != 0
    assert "xframe_threads must be 'auto', 0 or a thread count, got 'lots'" in result.stdout.str() + result.stderr.str()


def test_serial_run_keeps_torch_threads_and_a_count_sets_them(xf_pytester: pytest.Pytester) -> None:
    torch = pytest.importorskip("torch")
    xf_pytester.makepyfile(
        """
        import sys, torch
        from conftest import MLP
        from pytest_xframe import TensorSpec

        def test_mlp(xframe):
            xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))], backends=["onnxruntime"], exporter="torchscript", max_examples=2)
            print("torch threads", torch.get_num_threads())
        """
    )
    before = torch.get_num_threads()
    try:
        result = xf_pytester.runpytest("-s")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["xframe: *; threads: framework defaults", f"*torch threads {before}"])
        result = xf_pytester.runpytest("-s", "--xframe-threads=1")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["xframe: *; threads: 1 per framework", "*torch threads 1"])
    finally:
        torch.set_num_threads(before)  # the inner run shares this process


def test_onnxruntime_session_gets_the_count(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from pytest_xframe.backends.onnxruntime_runner import make_session

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


def test_xdist_workers_set_the_openmp_policy_before_conftests_import(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenMP reads the policy when torch loads it, which a conftest may do at import."""
    pytest.importorskip("xdist")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    pytester.makeconftest("import os\nSEEN = os.environ.get('OMP_WAIT_POLICY')\n")
    pytester.makepyfile(
        """
        import os, sys

        def test_policy():
            assert sys.modules["conftest"].SEEN == os.environ["EXPECTED"]
        """
    )
    monkeypatch.setenv("EXPECTED", "PASSIVE")
    pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly").assert_outcomes(passed=1)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("EXPECTED", "ACTIVE")
    pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly").assert_outcomes(passed=1)
