"""The model's state: parts a check's cases cannot reach through a passing model (a ``forward``
that gives a weight other values through ``.data`` changes what the export captures)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from pytest_xframe.check.model_state import ModelState, restore_and_warn
from pytest_xframe.errors import ModelStateWarning


def test_new_values_through_data_are_named_and_restored() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    weight = model[0].weight
    before = weight.detach().clone()
    state = ModelState.of(model)
    weight.data = torch.zeros_like(weight)  # no write is counted: only the values' address moves
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restore_and_warn(state, "Net")
    assert [str(w.message).split(";")[0] for w in caught if w.category is ModelStateWarning] == [
        "Net.forward changes the model's own state (parameter 0.weight)"
    ]
    assert model[0].weight is weight and torch.equal(weight, before)
    assert state.changes() == []


def test_the_same_values_at_a_new_address_are_not_a_change() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    state = ModelState.of(model)
    model[0].weight.data = model[0].weight.data.clone()
    assert state.changes() == []


def test_an_equal_tuple_put_back_is_not_a_change_and_another_tuple_is() -> None:
    """The dynamo exporter puts copies of tuple attributes back after tracing (a Conv2d's
    ``kernel_size``, a LayerNorm's ``normalized_shape``): equal values are the same state."""
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.LayerNorm(4))
    state = ModelState.of(model)
    model[0].kernel_size = tuple(list(model[0].kernel_size))
    model[1].normalized_shape = tuple(list(model[1].normalized_shape))
    assert state.changes() == []
    model[0].stride = (2, 2)
    assert state.changes() == ["attribute 0.stride"]
    state.restore()
    assert model[0].stride == (1, 1) and state.changes() == []


def test_an_equal_copy_of_nested_containers_is_not_a_change_and_another_value_is() -> None:
    """A transformers model keeps dicts of tuples of lists (``_pp_plan``), which the dynamo exporter
    puts back as copies after tracing: compared item by item, nested."""
    model = nn.Sequential(nn.Linear(3, 2))
    model.plan = {"lm_head": (["hidden_states"], ["logits"]), "tags": {"a", "b"}}
    state = ModelState.of(model)
    model.plan = {"lm_head": (["hidden_states"], ["logits"]), "tags": {"b", "a"}}
    assert state.changes() == []
    model.plan = {"lm_head": (["hidden_states"], ["scores"]), "tags": {"a", "b"}}
    assert state.changes() == ["attribute plan"]
    state.restore()
    assert model.plan["lm_head"][1] == ["logits"] and state.changes() == []
