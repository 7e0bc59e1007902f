"""plugin/options.py, pure: options are validated where they are given and resolved lowest precedence first."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_xframe import SpecError, TensorSpec


def test_layers_apply_lowest_precedence_first() -> None:
    """``resolve`` is the one place precedence is decided: later layers win, option by option."""
    from pytest_xframe.plugin.options import CheckOptions, resolve

    ini, command_line, marker, check = {"max_examples": 7, "atol": 1e-2}, {"atol": 1e-3}, {}, {"seed": 4}
    options = resolve(ini, command_line, marker, check)
    assert (options.max_examples, options.atol, options.seed) == (7, 1e-3, 4)
    assert options.rtol is None and options.backends == CheckOptions().backends  # untouched: the defaults
    assert options.tolerance("int64") == (0.0, 0.0)  # integers compare exactly whatever atol says
    assert options.tolerance("float32") == (1e-3, CheckOptions().tolerance("float32")[1])


def test_validate_names_the_option_and_where_it_was_given() -> None:
    from pytest_xframe.plugin.options import parse_backends, validate

    with pytest.raises(SpecError, match=r"atol must be a finite number >= 0, got -1 in @pytest.mark.xframe_parity"):
        validate({"atol": -1}, "@pytest.mark.xframe_parity", known=("onnxruntime",))
    with pytest.raises(SpecError, match=r"max_examples must be an int >= 1, got True in xframe.check\(\)"):
        validate({"max_examples": True}, "xframe.check()", known=("onnxruntime",))
    with pytest.raises(SpecError, match=r"unknown exporter 'tracing'"):
        validate({"exporter": "tracing"}, "--xframe-exporter", known=("onnxruntime",))
    checked = validate({"atol": 1, "backends": "onnxruntime,"}, "ini", known=("onnxruntime",))
    assert (checked["atol"], checked["backends"]) == (1.0, ("onnxruntime",))
    (layer,) = checked["policy"]  # a place's atol/rtol lead its policy layer (policy.py)
    assert [(rule.backend, rule.output, rule.values) for rule in layer] == [(None, None, (("atol", 1.0),))]
    assert parse_backends(["tflite", "onnxruntime", "tflite"], "ini", known=("onnxruntime", "tflite")) == ("tflite", "onnxruntime")


def test_unknown_check_option_lists_the_valid_ones(xframe, torch_mod) -> None:
    from torch_models import MLP

    with pytest.raises(SpecError, match=r"(?s)unknown xframe option\(s\) 'atool' in xframe.check\(\).*valid options: backends, atol"):
        xframe.check(MLP(4, 2).eval(), inputs=[TensorSpec((2, 4))], atool=1e-3)
    with pytest.raises(SpecError, match=r"(?s)unknown backend\(s\) 'tensorflw'.*valid backends: onnxruntime, tensorflow"):
        xframe.check(MLP(4, 2).eval(), inputs=[TensorSpec((2, 4))], backends=["tensorflw"])


def test_data_options_are_validated() -> None:
    """``data`` stays as given (a path as text; an iterable is streamed later), its limit and scale are checked."""
    from pytest_xframe.plugin.options import validate

    for options, message in (
        ({"data": {"x": 1}}, "data must be a path or an iterable of samples, got dict in here"),
        ({"data": ""}, "data must be a path or an iterable of samples, got an empty string in here"),
        ({"data_limit": 0}, "data_limit must be an int >= 1, got 0 in here"),
        ({"data_scale": -1}, "data_scale must be a finite number >= 0, got -1 in here"),
        ({"data_scale": float("nan")}, "data_scale must be a finite number >= 0, got nan in here"),
    ):
        with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
            validate(dict(options), "here", known=("onnxruntime",))
    given = validate({"data": Path("a/b"), "data_scale": 1}, "here", known=("onnxruntime",))
    assert given == {"data": "a/b", "data_scale": 1.0}


def test_every_check_option_is_in_the_table_once() -> None:
    from dataclasses import fields

    from pytest_xframe.plugin.options import OPTIONS, CheckOptions

    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    assert [o.name for o in OPTIONS if o.check] == [f.name for f in fields(CheckOptions)]
