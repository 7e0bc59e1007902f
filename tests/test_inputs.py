"""Bad input gets a clear error before anything runs, and the user's model is left as it was."""

from __future__ import annotations

import sys

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


@pytest.fixture(scope="module")
def torch_mod():
    return pytest.importorskip("torch")


def _mlp(torch_mod):
    torch_mod.manual_seed(0)
    return torch_mod.nn.Sequential(torch_mod.nn.Linear(4, 8), torch_mod.nn.BatchNorm1d(8), torch_mod.nn.Dropout(0.5), torch_mod.nn.Linear(8, 2))


class _TwoArgs:
    pass


def test_not_a_module(xframe) -> None:
    with pytest.raises(SpecError, match=r"needs a torch.nn.Module, got function"):
        xframe.check(lambda x: x, inputs=[TensorSpec((2,))], backends=["onnxruntime"])


def test_training_mode_is_refused_with_the_fix(xframe, torch_mod) -> None:
    with pytest.raises(SpecError) as info:
        xframe.check(_mlp(torch_mod), inputs=[TensorSpec((2, 4))], backends=["onnxruntime"])
    text = str(info.value)
    assert "training mode" in text and "train-only layers (BatchNorm1d at 1, Dropout at 2)" in text and "model.eval()" in text
    assert "model Sequential" in text


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


def test_unknown_check_option_lists_the_valid_ones(xframe, torch_mod) -> None:
    with pytest.raises(SpecError, match=r"(?s)unknown xframe option\(s\) 'atool' in xframe.check\(\).*valid options: backends, atol"):
        xframe.check(_mlp(torch_mod).eval(), inputs=[TensorSpec((2, 4))], atool=1e-3)
    with pytest.raises(SpecError, match=r"(?s)unknown backend\(s\) 'tensorflw'.*valid backends: onnxruntime, tensorflow"):
        xframe.check(_mlp(torch_mod).eval(), inputs=[TensorSpec((2, 4))], backends=["tensorflw"])


def test_the_model_is_left_as_it_was(xframe, torch_mod) -> None:
    model = _mlp(torch_mod).eval()
    model[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    xframe.check(model, inputs=[TensorSpec((Dim("batch", 2, 4), 4))], backends=["onnxruntime", "tensorflow"], max_examples=3,
                 exporter="torchscript")
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch_mod.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == grads


def test_concrete_tensors_are_used_as_given(xframe, torch_mod) -> None:
    import numpy as np

    class Scale(torch_mod.nn.Module):
        def forward(self, x, factor):
            return x * factor

    factor = np.array([2.0, -1.0, 0.5], dtype=np.float32)
    report = xframe.check(Scale().eval(), inputs=[TensorSpec((2, 3)), torch_mod.from_numpy(factor)], backends=["onnxruntime"],
                          max_examples=3, exporter="torchscript")
    assert report["onnxruntime"].verdict == "passed"


def test_bad_marker_usage_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.xframe_parity(atoll=1e-5)
        def test_typo(xframe):
            pass

        @pytest.mark.xframe_parity(backends=["onnxruntime", "caffe2"])
        def test_backend(xframe):
            pass

        @pytest.mark.xframe_parity("onnxruntime")
        def test_positional(xframe):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=3)
    pytester.makepyfile(
        test_no_fixture="""
        import pytest

        @pytest.mark.xframe_parity()
        def test_forgot_fixture():
            pass
        """
    )
    no_fixture = pytester.runpytest("test_no_fixture.py")
    assert no_fixture.ret != 0
    no_fixture.stdout.fnmatch_lines(
        ["*test_forgot_fixture is marked xframe_parity but does not take the xframe fixture*", "*try:   add an `xframe` argument*"]
    )
    result.stdout.fnmatch_lines_random(
        [
            "*unknown xframe option(s) 'atoll' in @pytest.mark.xframe_parity on *test_typo*",
            "*valid options: backends, atol, rtol, max_examples, seed, exporter, opset, equal_nan, name*",
            "*unknown backend(s) 'caffe2'*",
            "*takes keyword options only*",
        ]
    )


def test_backends_are_known_by_name_before_their_modules_are_imported(pytester: pytest.Pytester) -> None:
    """The registry names the built-ins (options are checked against it at start-up) and imports
    a backend's module only when the backend is used."""
    code = (
        "import sys; from pytest_xframe import backends; names = backends.registry().names(); "
        "print(names == tuple(backends.BUILTIN), any(m.startswith('pytest_xframe.backends.') for m in sys.modules), "
        "backends.get('tflite').name, 'pytest_xframe.backends.tflite_runner' in sys.modules)"
    )
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0
    assert result.stdout.lines[-1] == "True False tflite True"
