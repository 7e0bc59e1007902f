"""The input text grammar (pytest_xframe/inputs/spec_text.py): what parses to which TensorSpec, and where
an error points."""

from __future__ import annotations

import pytest

from pytest_xframe import Dim, SpecError, TensorSpec
from pytest_xframe.errors import SpecTextError
from pytest_xframe.inputs.spec_text import parse_inputs

BATCH = Dim("batch", 1, 8)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x=float32[batch:1..8,20]", {"x": TensorSpec((BATCH, 20))}),
        (
            "x=float32[batch:1..8,20]; ids=int64[batch,16](0..999)",
            {"x": TensorSpec((BATCH, 20)), "ids": TensorSpec((BATCH, 16), "int64", low=0, high=999)},
        ),
        ("float32[1,3,32,32](-1.5..2e1), bool[4]", [TensorSpec((1, 3, 32, 32), low=-1.5, high=20.0), TensorSpec((4,), "bool")]),
        ("x=float16[]", {"x": TensorSpec((), "float16")}),
        (" x = float32[ batch : 1 .. 8 , 3 ] ( 0 .. 1 ) ; ", {"x": TensorSpec((BATCH, 3), low=0, high=1)}),
        ("left=float32[n:0..4,4], right=float32[n,3]", {"left": TensorSpec((Dim("n", 0, 4), 4)), "right": TensorSpec((Dim("n", 0, 4), 3))}),
        ("uint8[2,2](0..255)", [TensorSpec((2, 2), "uint8", low=0, high=255)]),
    ],
)
def test_parses_to_tensor_specs(text, expected):
    assert parse_inputs(text) == expected


def test_named_entries_keep_their_order():
    assert list(parse_inputs("b=float32[1]; a=float32[2]")) == ["b", "a"]


def test_a_dim_named_again_is_the_same_dim():
    specs = parse_inputs("x=float32[seq:2..16,4]; mask=bool[seq]")
    assert specs["x"].shape[0] is specs["mask"].shape[0]


@pytest.mark.parametrize(
    "spec",
    [TensorSpec((BATCH, 20)), TensorSpec((1, 3, 8, 8), "float16"), TensorSpec(()), TensorSpec((Dim("t", 0, 3),), "bool")],
)
def test_describe_output_parses_back(spec):
    assert parse_inputs(spec.describe()) == [spec]


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("x=float32[batch:1..8,20", 23, "the text ended"),
        ("x=float33[2]", 2, "unknown dtype 'float33'"),
        ("x=int64[2]", 10, "needs a value range"),
        ("x=float32[b]", 10, "Dim 'b' has no range"),
        ("x=float32[b:1..8]; y=float32[b:1..4]", 29, "was 1..8 earlier, 1..4 here"),
        ("x=float32[2]; float32[3]", 14, "name every input or none"),
        ("x=float32[2] y=float32[3]", 13, "expected ';' or ','"),
        ("x=float32[2.5]", 10, "whole number"),
        ("x=float32[2]%", 12, "unexpected character '%'"),
        ("x=float32[b:8..1]", 10, "min > max"),
        ("x=float32[2]; x=float32[3]", 14, "given twice"),
        ("x=float32[2](1..)", 16, "expected a number"),
        ("   ", 0, "no inputs given"),
    ],
)
def test_errors_point_at_the_offending_character(text, column, words):
    with pytest.raises(SpecTextError) as info:
        parse_inputs(text)
    err = info.value
    assert err.position == column
    lines = str(err).splitlines()
    assert words in lines[0]
    assert lines[0].startswith(f"cannot parse input text at character {column + 1}")
    assert lines[1] == f"    {text}"
    assert lines[2] == " " * (4 + column) + "^"


def test_error_is_a_spec_error_with_a_hint():
    with pytest.raises(SpecError, match="add \\(low..high\\) after the shape"):
        parse_inputs("ids=int64[batch:1..4,16]")


def test_not_a_string_is_refused():
    with pytest.raises(SpecError, match="must be a string"):
        parse_inputs(["x=float32[2]"])  # type: ignore[arg-type]
