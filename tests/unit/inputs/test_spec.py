"""inputs/spec.py: TensorSpec and Dim validate where they are built; bind_inputs matches inputs to forward."""

from __future__ import annotations

import pytest

from pytest_xframe import Dim, SpecError, TensorSpec


def test_spec_errors_fail_where_the_spec_is_built() -> None:
    with pytest.raises(SpecError, match=r"integer TensorSpec\(2, 5\) \(int64\) needs low and high"):
        TensorSpec((2, 5), "int64")
    with pytest.raises(SpecError, match=r"low > high \(3 > 1\)"):
        TensorSpec((2,), low=3, high=1)
    with pytest.raises(SpecError, match=r"Dim\('batch'\) has min > max \(8 > 1\)"):
        Dim("batch", 8, 1)
    with pytest.raises(SpecError, match="unknown dtype"):
        TensorSpec((2,), "complex_float9")
    with pytest.raises(SpecError, match="non-negative ints or Dim"):
        TensorSpec((2, "x"))
    assert TensorSpec((Dim("b", 1, 4), 3), "torch.float16").dtype == "float16"


def test_inputs_that_do_not_match_forward_are_named(xframe, torch_mod) -> None:
    class Pair(torch_mod.nn.Module):
        def forward(self, tokens, mask):
            return tokens * mask

    model = Pair().eval()
    with pytest.raises(SpecError) as info:
        xframe.check(model, inputs={"tokens": TensorSpec((2,)), "maks": TensorSpec((2,))}, backends=["onnxruntime"])
    assert "Pair.forward(tokens, mask)" in str(info.value)
    assert "unknown parameter(s): maks" in str(info.value) and "missing required parameter(s): mask" in str(info.value)
    with pytest.raises(SpecError, match=r"3 input\(s\) given, Pair.forward\(tokens, mask\) takes 2"):
        xframe.check(model, inputs=[TensorSpec((2,))] * 3, backends=["onnxruntime"])
    with pytest.raises(SpecError, match="must be a TensorSpec, torch.Tensor or numpy.ndarray, got list"):
        xframe.check(model, inputs=[[1, 2], TensorSpec((2,))], backends=["onnxruntime"])
    with pytest.raises(SpecError, match="Dim 'n' is declared with different bounds"):
        xframe.check(model, inputs=[TensorSpec((Dim("n", 1, 3),)), TensorSpec((Dim("n", 1, 4),))], backends=["onnxruntime"])


def test_concrete_tensors_are_used_as_given(xframe, torch_mod) -> None:
    import numpy as np

    class Scale(torch_mod.nn.Module):
        def forward(self, x, factor):
            return x * factor

    factor = np.array([2.0, -1.0, 0.5], dtype=np.float32)
    report = xframe.check(Scale().eval(), inputs=[TensorSpec((2, 3)), torch_mod.from_numpy(factor)], backends=["onnxruntime"],
                          max_examples=3, exporter="torchscript")
    assert report["onnxruntime"].verdict == "passed"
