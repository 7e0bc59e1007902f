"""onnx-tf conversion in a real pytest session (the op-level tests: unit/backends/test_onnx_tf.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("onnx_tf") is None:
    pytest.skip("needs tensorflow and onnx-tf (pip install pytest-xframe[tf])", allow_module_level=True)


@pytest.mark.slow
def test_conversion_traces_without_autograph(pytester: pytest.Pytester) -> None:
    """AutoGraph would transpile every handler a model uses (0.9-1.8 s of a small model's first
    conversion, once per process): plain handlers convert without it. A fresh process, as
    AutoGraph keeps what it transpiled."""
    script = pytester.makepyfile(
        check=f"""
        import sys, tempfile
        from pathlib import Path
        from onnx import TensorProto, helper
        from pytest_xframe.backends.tensorflow.onnx_tf import convert
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from suite_helpers import transpiled

        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])
        nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
        graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6])])
        convert(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), Path(tempfile.mkdtemp()) / "m", model_name="plain")
        print("transpiled", transpiled("_onnx_node_to_tensorflow_op"))
        """
    )
    result = pytester.run(sys.executable, str(script))
    assert result.ret == 0, result.stderr.str()[-2000:]
    assert result.stdout.lines[-1] == "transpiled 0"
