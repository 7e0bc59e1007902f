"""The onnx-tf compatibility layer: onnx.mapping rebuild, tfa/tfp stand-ins, handler registration.

Real onnx / TensorFlow / onnx-tf throughout; where a test needs a pristine process (install() is
once per process) it runs one. The layer must engage only where needed, so what a test expects
depends on the stack: on the current one (onnx 1.23, TF 2.21) onnx.mapping is rebuilt and
tensorflow-addons / tensorflow-probability are stood in for; on the older pinned one (tox
``py311-tf215``: onnx 1.15, TF 2.15 with the real packages) install() leaves all of them alone.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("onnx_tf") is None:
    pytest.skip("needs tensorflow and onnx-tf (pip install pytest-xframe[tf])", allow_module_level=True)

from onnx import TensorProto, helper  # noqa: E402

from pytest_xframe.backends.tensorflow import onnx_tf_compat  # noqa: E402
from pytest_xframe.backends.tensorflow.onnx_tf import convert  # noqa: E402
from pytest_xframe.errors import ConversionError  # noqa: E402

REPO = Path(__file__).resolve().parents[3]

#: onnx <= 1.16 still ships onnx/mapping.py (the older stack); install() must keep that module.
ONNX_SHIPS_MAPPING = (Path(onnx.__file__).parent / "mapping.py").is_file()


@functools.cache
def _real_package_works(name: str) -> bool:
    """Whether the real package imports, asked of a fresh interpreter (an oracle independent of
    install()). tensorflow-addons / -probability work on the older stack (TF 2.15); on TF 2.21 they
    are absent, or installed (onnx-tf's dependency pulls tensorflow-addons) but fail to import
    under Keras 3: either way stand-ins take their place."""
    if importlib.machinery.PathFinder.find_spec(name) is None:
        return False
    return subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True).returncode == 0


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )


def _single_node_model(op: str, opset: int, name: str, **attrs: object) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"], name=name, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    opsets = [helper.make_opsetid("", opset)]
    # the oldest IR the opset allows, so an older onnxruntime reads what a newer onnx writes
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


@pytest.fixture(scope="module")
def installed() -> None:
    onnx_tf_compat.install()


def test_modules_import_nothing_heavy() -> None:
    """Importing our convert modules must not import onnx, tensorflow or onnx_tf."""
    result = _run_python(
        """
        import sys
        import pytest_xframe.backends.tensorflow.onnx_tf_compat, pytest_xframe.backends.tensorflow.lowering, pytest_xframe.backends.tensorflow.onnx_tf
        heavy = [m for m in ("onnx", "tensorflow", "onnx_tf", "torch") if m in sys.modules]
        assert not heavy, heavy
        assert "onnx.mapping" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr


def test_install_is_idempotent_and_cheap(installed: None) -> None:
    import onnx_tf.handlers.backend.unsqueeze as unsqueeze

    mapping_before = onnx.mapping  # type: ignore[attr-defined]
    tfa_before = sys.modules["tensorflow_addons"]
    handler_before = unsqueeze.Unsqueeze.__dict__["version_13"]
    start = time.perf_counter()
    for _ in range(100):
        onnx_tf_compat.install()
    assert time.perf_counter() - start < 0.01
    assert onnx.mapping is mapping_before  # type: ignore[attr-defined]
    assert sys.modules["tensorflow_addons"] is tfa_before
    assert unsqueeze.Unsqueeze.__dict__["version_13"] is handler_before


def test_onnx_mapping_rebuilt_consistently(installed: None) -> None:
    """onnx >= 1.17: the rebuilt module agrees with onnx's helpers. onnx <= 1.16: install() kept
    onnx's own module (nothing to rebuild), which agrees with them as well."""
    import onnx.mapping as mapping  # the rebuilt module is importable the old way too

    assert onnx.helper.mapping is mapping  # type: ignore[attr-defined]
    assert onnx.mapping is mapping  # type: ignore[attr-defined]
    if ONNX_SHIPS_MAPPING:
        assert Path(mapping.__file__) == Path(onnx.__file__).parent / "mapping.py"
        TENSOR_TYPE_MAP = mapping.TENSOR_TYPE_MAP
    else:
        assert getattr(mapping, "__file__", None) is None  # ours, built in memory
        from onnx._mapping import TENSOR_TYPE_MAP

    assert set(mapping.TENSOR_TYPE_TO_NP_TYPE) == set(TENSOR_TYPE_MAP)
    for dtype in TENSOR_TYPE_MAP:
        assert mapping.TENSOR_TYPE_TO_NP_TYPE[dtype] == helper.tensor_dtype_to_np_dtype(dtype)
        assert mapping.TENSOR_TYPE_TO_STORAGE_TENSOR_TYPE[dtype] == helper.tensor_dtype_to_storage_tensor_dtype(dtype)
    for np_dtype in ("float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16",
                     "uint32", "uint64", "bool", "complex64", "complex128"):
        dt = np.dtype(np_dtype)
        assert mapping.NP_TYPE_TO_TENSOR_TYPE[dt] == helper.np_dtype_to_tensor_dtype(dt)
    for dtype in (TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.DOUBLE, TensorProto.BOOL,
                  TensorProto.UINT8, TensorProto.FLOAT16, TensorProto.STRING, TensorProto.UINT64):
        storage = mapping.TENSOR_TYPE_TO_STORAGE_TENSOR_TYPE[dtype]
        assert mapping.STORAGE_TENSOR_TYPE_TO_FIELD[storage] == helper.tensor_dtype_to_field(dtype)


def test_install_keeps_existing_mapping_and_importable_modules() -> None:
    """On a stack that still has onnx.mapping (onnx <= 1.16) and the optional packages,
    install() must leave them alone and only stand in for what is really missing.

    tensorflow_addons is made importable here (a fake); tensorflow_probability is whatever the
    stack has: a stand-in where it is not installed, else the real package, untouched."""
    result = _run_python(
        f"""
        import sys, types
        import onnx, onnx.helper
        from pytest_xframe.backends.tensorflow import onnx_tf_compat
        if {ONNX_SHIPS_MAPPING!r}:  # onnx <= 1.16: its own module is the pre-existing one
            import onnx.mapping as original
        else:
            original = onnx_tf_compat.mapping.build_onnx_mapping()
        original.MARKER = "pre-existing"
        onnx.mapping = original
        onnx.helper.mapping = original
        def hardmax(x):
            return "real tfa"
        fake_tfa = types.ModuleType("tensorflow_addons")
        fake_tfa.seq2seq = types.SimpleNamespace(hardmax=hardmax)
        sys.modules["tensorflow_addons"] = fake_tfa  # importable: must be kept
        onnx_tf_compat.install()
        assert onnx.mapping is original and onnx.helper.mapping is original
        assert "onnx.mapping" not in sys.modules or sys.modules["onnx.mapping"] is original
        assert sys.modules["tensorflow_addons"] is fake_tfa
        import onnx_tf.handlers.backend.hardmax as hm
        assert hm.Hardmax.TF_FUNC is hardmax
        tfp = sys.modules["tensorflow_probability"]
        if {_real_package_works("tensorflow_probability")!r}:
            assert not isinstance(tfp, onnx_tf_compat.stand_ins.StandInModule), tfp
            assert tfp.__file__.endswith("tensorflow_probability/__init__.py"), tfp.__file__
        else:
            assert isinstance(tfp, onnx_tf_compat.stand_ins.StandInModule), tfp
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_stand_in_allows_attribute_access_but_not_calls(installed: None) -> None:
    import tensorflow_addons as tfa

    if _real_package_works("tensorflow_addons"):
        # older stack: the real package is used, not shadowed; check the stand-in install() would
        # have used in its place
        assert not isinstance(tfa, onnx_tf_compat.stand_ins.StandInModule)
        assert tfa.__file__.endswith("tensorflow_addons/__init__.py"), tfa.__file__
        assert sys.modules["tensorflow_addons"] is tfa
        tfa = onnx_tf_compat.stand_ins.stand_in("tensorflow_addons")
    else:
        assert isinstance(tfa, onnx_tf_compat.stand_ins.StandInModule)
    fn = tfa.seq2seq.hardmax  # onnx-tf evaluates this at import time
    with pytest.raises(onnx_tf_compat.MissingOptionalModule) as info:
        fn([[1.0, 2.0]])
    assert isinstance(info.value, ModuleNotFoundError)
    assert info.value.name == "tensorflow_addons"
    assert "Hardmax" in str(info.value)


def _run_saved_model(saved_model: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return tf.saved_model.load(str(saved_model)).signatures["serving_default"](x=tf.constant(x))["y"].numpy()


def test_hardmax_conversion_names_op_and_missing_module(installed: None, tmp_path: Path) -> None:
    """Without tensorflow-addons: a short error naming op, node and module. With it (older
    stack): nothing was stood in, and Hardmax converts through the real package."""
    model = _single_node_model("Hardmax", 13, "hardmax_0")
    if _real_package_works("tensorflow_addons"):
        assert not isinstance(sys.modules["tensorflow_addons"], onnx_tf_compat.stand_ins.StandInModule)
        convert(model, tmp_path / "sm", model_name="hardmax")
        assert (tmp_path / "sm" / "saved_model.pb").exists()
        x = np.array([[0.5, -1.0, 2.0], [3.0, 1.0, -2.0]], dtype=np.float32)
        import onnxruntime as ort

        want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        got = _run_saved_model(tmp_path / "sm", x)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, [[0, 0, 1], [1, 0, 0]])
        return
    with pytest.raises(ConversionError) as info:
        convert(model, tmp_path / "sm", model_name="hardmax")
    err = info.value
    assert isinstance(err, onnx_tf_compat.MissingOptionalModule)
    text = str(err)
    assert "Hardmax" in text and "tensorflow_addons" in text
    assert err.op_type == "Hardmax" and err.op_version == 13 and err.node_name == "hardmax_0"
    assert "hardmax_0" in text
    assert err.details and "Traceback" in err.details
    assert len(text.splitlines()) <= 4
    assert not (tmp_path / "sm" / "saved_model.pb").exists()


def test_bernoulli_conversion_names_op_and_missing_module(installed: None, tmp_path: Path) -> None:
    """Without tensorflow-probability: an error naming op and module. With it (older stack):
    Bernoulli converts through the real package (probabilities 0 and 1 make it deterministic)."""
    model = _single_node_model("Bernoulli", 15, "bern_0")
    if _real_package_works("tensorflow_probability"):
        assert not isinstance(sys.modules["tensorflow_probability"], onnx_tf_compat.stand_ins.StandInModule)
        convert(model, tmp_path / "sm", model_name="bernoulli")
        assert (tmp_path / "sm" / "saved_model.pb").exists()
        x = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
        got = _run_saved_model(tmp_path / "sm", x)
        # against onnx's reference implementation: onnxruntime 1.32's Bernoulli draws 1 with
        # probability 1 - p (p=0 gives 1), against the ONNX spec and onnx.reference
        from onnx.reference import ReferenceEvaluator

        want = ReferenceEvaluator(model).run(None, {"x": x})[0]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, x)  # the spec: 1 with probability p
        return
    with pytest.raises(onnx_tf_compat.MissingOptionalModule) as info:
        convert(model, tmp_path / "sm", model_name="bernoulli")
    assert "Bernoulli" in str(info.value) and "tensorflow_probability" in str(info.value)


def test_unimplemented_op_error_is_short_and_actionable(installed: None, tmp_path: Path) -> None:
    """An op onnx-tf has no handler for: op type, op version, node, opset and what to try."""
    node = helper.make_node("Unique", ["x"], ["y"], name="unique_0", sorted=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ConversionError) as info:
        convert(model, tmp_path / "sm", model_name="unique")
    err = info.value
    text = str(err)
    assert err.op_type == "Unique" and err.op_version == 11 and err.node_name == "unique_0"
    assert "Unique-11" in text and "unique_0" in text and "opset ai.onnx 17" in text
    assert "no onnx-tf handler" in text and "onnxruntime" in text
    assert len(text.splitlines()) <= 4
    assert "Traceback" in (err.details or "")


def test_added_versions_are_dispatched(installed: None) -> None:
    """Every op version we add is what onnx-tf picks at an opset where that version is current.

    onnx-tf picks the version from the installed onnx's schemas. An op version newer than the
    installed onnx knows (Cast-21 etc. on onnx 1.15, which stops at opset 20) cannot be picked, nor
    be in a model that onnx loads as that version: there the newest version onnx does know must
    be picked, and have a handler."""
    from onnx import defs
    from onnx_tf.common.handler_helper import get_all_backend_handlers

    last_known = defs.onnx_opset_version()
    for op, versions in onnx_tf_compat.handled_versions().items():
        for version in versions:
            handler = get_all_backend_handlers({"": version})[""][op]
            if version > last_known:
                current = defs.get_schema(op, version).since_version
                assert current <= last_known and handler.SINCE_VERSION == current, (op, version)
                assert callable(getattr(handler, f"version_{current}")), (op, version, current)
                continue
            assert handler.SINCE_VERSION == version, (op, version)
            assert callable(getattr(handler, f"version_{version}")), (op, version)


# Op versions still without a handler at opsets 13..21, on purpose (rare in exported models).
KNOWN_GAPS = {"RoiAlign", "OptionalGetElement", "OptionalHasElement", "QuantizeLinear", "DequantizeLinear",
              "QLinearMatMul", "Scatter", "Upsample"}


@pytest.mark.parametrize("opset", range(13, 22))
def test_no_unexpected_gaps_up_to_last_supported_opset(installed: None, opset: int) -> None:
    from onnx import defs
    from onnx_tf.common.handler_helper import get_all_backend_handlers

    missing = []
    for op, handler in get_all_backend_handlers({"": opset})[""].items():
        if not defs.has(op) or op in KNOWN_GAPS:
            continue
        try:
            defs.get_schema(op, opset)
        except defs.SchemaError:
            continue  # op introduced after this opset (e.g. Gelu before 20)
        if not hasattr(handler, f"version_{handler.SINCE_VERSION}"):
            missing.append(f"{op}-{handler.SINCE_VERSION}")
    assert not missing
