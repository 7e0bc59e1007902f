"""Bad input gets a clear error before anything runs, and the user's model is left as it was."""

from __future__ import annotations

import pytest

from pytest_xframe import Dim, SpecError, TensorSpec


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
