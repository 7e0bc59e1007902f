"""Inputs drawn from TensorSpecs: shapes, shared dims, dtypes and ranges."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from pytest_xframe import Dim, TensorSpec
from pytest_xframe.formatting import describe_array
from pytest_xframe.inputs.spec import InputSlot
from pytest_xframe.inputs.strategies import ELEMENTWISE_LIMIT, feeds_strategy

BATCH = Dim("batch", 1, 5)
SLOTS = (
    InputSlot("x", TensorSpec((BATCH, 3), low=-2.5, high=0.5)),
    InputSlot("ids", TensorSpec((BATCH, Dim("seq", 2, 6)), "int64", low=0, high=9)),
    InputSlot("mask", TensorSpec((BATCH,), "bool")),
    InputSlot("image", TensorSpec((1, 3, 32, 32), "float16")),
    InputSlot("fixed", value=np.arange(4, dtype=np.float32)),
)


@settings(max_examples=40, deadline=None)
@given(feeds_strategy(SLOTS))
def test_drawn_inputs_follow_their_specs(feeds) -> None:
    assert list(feeds) == ["x", "ids", "mask", "image", "fixed"]
    batch = feeds["x"].shape[0]
    assert 1 <= batch <= 5
    assert feeds["ids"].shape[0] == batch and feeds["mask"].shape == (batch,)
    assert 2 <= feeds["ids"].shape[1] <= 6
    assert feeds["x"].dtype == np.float32 and feeds["ids"].dtype == np.int64 and feeds["mask"].dtype == np.bool_
    assert np.isfinite(feeds["x"]).all() and feeds["x"].min() >= -2.5 and feeds["x"].max() <= 0.5
    assert feeds["ids"].min() >= 0 and feeds["ids"].max() <= 9
    assert feeds["image"].dtype == np.float16 and feeds["image"].size > ELEMENTWISE_LIMIT
    assert np.isfinite(feeds["image"]).all() and np.abs(feeds["image"]).max() <= 1
    np.testing.assert_array_equal(feeds["fixed"], np.arange(4))


def test_failing_examples_read_as_shapes_and_small_values() -> None:
    assert describe_array(np.array([1.5, -2.0], np.float32)) == "float32[2] [ 1.5, -2. ]"
    assert describe_array(np.zeros((4, 8), np.float32)) == "float32[4, 8] in [0, 0]"
