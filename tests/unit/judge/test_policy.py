"""Judging policies, pure: resolution rules (specificity, layers, precision defaults) and refusals of bad tables."""

from __future__ import annotations

import pytest

from pytest_xframe.errors import SpecError
from pytest_xframe.judge.policy import DEFAULT_TOLERANCES, PRECISION_DEFAULTS, TopK, parse_policy, resolve
from pytest_xframe.plugin.options import resolve as resolve_options
from pytest_xframe.plugin.options import validate

# -- resolution, pure ----------------------------------------------------------------------------


def test_more_specific_wins_within_a_layer_and_a_higher_layer_wins_over_it() -> None:
    project = {"policy": {"cosine": 0.5, "backends": {"tflite-*": {"cosine": 0.6, "outputs": {"logits": {"cosine": 0.8}}}},
                          "outputs": {"log*": {"cosine": 0.7, "snr_db": 20}}}}
    options = _options(project)
    f32 = DEFAULT_TOLERANCES["float32"]

    def pick(opts, backend: str, output: str):
        return resolve(opts.policy, backend, output, "float32", "fp32", f32)

    assert pick(options, "onnxruntime", "probs").cosine == 0.5
    assert pick(options, "tflite-int8", "probs").cosine == 0.6
    assert pick(options, "onnxruntime", "logits").cosine == 0.7
    assert pick(options, "tflite-int8", "logits").cosine == 0.8
    assert pick(options, "tflite-int8", "logits").snr_db == 20.0
    # a marker's top-level value beats the project's most specific one; check() beats the marker
    with_marker = _options(project, {"policy": {"cosine": 0.9}})
    assert pick(with_marker, "tflite-int8", "logits").cosine == 0.9
    assert pick(with_marker, "tflite-int8", "logits").snr_db == 20.0  # keys resolve one by one
    with_check = _options(project, {"policy": {"cosine": 0.9}}, {"atol": 0.5, "policy": {"outputs": {"logits": {"cosine": 0.95}}}})
    chosen = pick(with_check, "tflite-int8", "logits")
    assert (chosen.cosine, chosen.atol, chosen.rtol) == (0.95, 0.5, f32[1])


def test_precision_defaults_and_a_users_tolerance_judging_again() -> None:
    f32 = DEFAULT_TOLERANCES["float32"]
    fp32 = resolve((), "onnxruntime", "y", "float32", "fp32", f32)
    assert (fp32.atol, fp32.rtol, fp32.max_mismatch, fp32.cosine, fp32.snr_db) == (*f32, 0.0, None, None)
    int8 = resolve((), "tflite-int8", "y", "float32", "int8", f32)
    assert int8.max_mismatch is None  # elementwise figures shown, not judged
    assert (int8.cosine, int8.snr_db) == (PRECISION_DEFAULTS["int8"]["cosine"], PRECISION_DEFAULTS["int8"]["snr_db"])
    fp16 = resolve((), "tflite-fp16", "y", "float32", "fp16", f32)
    assert fp16.snr_db > int8.snr_db and fp16.cosine > int8.cosine
    given = resolve(_options({"atol": 1e-2}).policy, "tflite-int8", "y", "float32", "int8", f32)
    assert (given.atol, given.max_mismatch) == (1e-2, 0.0)
    assert resolve((), "tflite-int8", "ids", "int64", "int8", None).max_mismatch == 0.0  # integers stay exact


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"cosin": 0.9}, "unknown policy key(s) 'cosin'"),
        ({"cosine": 1.5}, "policy cosine out of range: 1.5"),
        ({"snr_db": "40"}, "policy snr_db must be a number, got '40'"),
        ({"max_mismatch": -0.1}, "policy max_mismatch out of range"),
        ({"topk": {"k": 0}}, "policy topk.k must be an int >= 1"),
        ({"topk": 0.9}, "policy topk must be a table"),
        ({"outputs": {"y": {"backends": {"x": {}}}}}, "unknown policy key(s) 'backends'"),
        ({"backends": []}, "policy 'backends'"),
    ],
)
def test_bad_policies_are_spec_errors(table: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_policy(table, "the test")
    assert message in str(info.value)


def test_atol_given_twice_in_one_place_is_refused() -> None:
    with pytest.raises(SpecError, match="atol given both as an option and in policy="):
        validate({"atol": 1e-3, "policy": {"atol": 1e-4}}, "the marker")
    assert _options({"policy": {"topk": {"k": 3}}}).policy[0][0].values == (("topk", TopK(3, None)),)


# -- resolution, pure ----------------------------------------------------------------------------
def _options(*layers: dict) -> object:
    return resolve_options(*(validate(layer, f"layer {i}") for i, layer in enumerate(layers)))
