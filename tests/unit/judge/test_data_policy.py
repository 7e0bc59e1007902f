"""Thresholds over a data set: the policy's ``data`` table (parsing, validation, resolution, the
defaults of reduced-precision targets with data) and the figures over the samples
(``aggregate.OverData``). Pure Python and numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_xframe import SpecError
from pytest_xframe.judge.aggregate import OverData, statistic
from pytest_xframe.judge.data_policy import DataThresholds, parse_data_policy
from pytest_xframe.judge.policy import Thresholds, parse_policy, resolve


def test_a_data_table_flattens_to_one_key_per_statistic() -> None:
    table = {"snr_db": {"p50": 25, "worst": 10}, "cosine": {"p95": 0.99}, "top1_agreement": 0.98, "accuracy_drop": 0.01}
    assert parse_data_policy(table, "here") == (
        ("data.snr_db.p50", 25.0), ("data.snr_db.worst", 10.0), ("data.cosine.p95", 0.99), ("data.top1_agreement", 0.98), ("data.accuracy_drop", 0.01)
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"snr": {"p50": 1}}, "unknown policy key(s) 'snr' in here data (did you mean 'snr_db'?)"),
        ({"snr_db": {"median": 20}}, "unknown statistic 'median' of snr_db in policy here data"),
        ({"snr_db": {"p100": 20}}, "unknown statistic 'p100' of snr_db"),
        ({"snr_db": {"p0": 20}}, "unknown statistic 'p0' of snr_db"),
        ({"snr_db": 20}, "policy here data snr_db must be a table of statistic = bound, got 20"),
        ({"cosine": {"worst": 1.5}}, "policy cosine.worst in here data must be a number in -1..1, got 1.5"),
        ({"snr_db": {"mean": float("inf")}}, "policy snr_db.mean in here data must be a finite number, got inf"),
        ({"top1_agreement": 2}, "policy top1_agreement in here data must be a number in 0..1, got 2"),
        ({"accuracy_drop": True}, "policy accuracy_drop in here data must be a number in 0..1, got True"),
        ({}, "policy here data must be a non-empty table"),
    ],
)
def test_the_data_table_is_validated_strictly(table: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_data_policy(table, "here")
    assert message in str(info.value)
    assert "statistics: mean, worst or pNN" in str(info.value)


def _resolve(layers, precision: str, over_data: bool, output: str = "logits", backend: str = "tflite-int8") -> Thresholds:
    return resolve(layers, backend, output, "float32", precision, (1e-5, 1e-4), over_data=over_data)


def test_reduced_precision_targets_are_judged_over_the_data_by_default() -> None:
    int8 = _resolve((), "int8", over_data=True)
    assert int8.cosine is None and int8.snr_db is None, "the per-example floors give way to the figures over the data"
    assert int8.data == DataThresholds((("snr_db", "p50", 20.0), ("snr_db", "p95", 10.0)), 0.95, 0.02)
    assert _resolve((), "int8", over_data=False).snr_db == 15.0 and not _resolve((), "int8", over_data=False).data
    fp32 = _resolve((), "fp32", over_data=True)
    assert fp32.max_mismatch == 0.0 and not fp32.data, "fp32 stays worst case per input"
    assert _resolve((), "fp16", over_data=True).data.levels == (("snr_db", "p50", 40.0), ("snr_db", "p95", 30.0))


def test_data_thresholds_layer_and_scope_per_statistic() -> None:
    project = parse_policy({"data": {"snr_db": {"p50": 30}}, "backends": {"tflite-*": {"data": {"snr_db": {"worst": 5}}}}}, "project", shared=True)
    marker = parse_policy({"outputs": {"logits": {"data": {"top1_agreement": 0.5}}}}, "marker")
    th = _resolve((project, marker), "int8", over_data=True)
    assert th.data.levels == (("snr_db", "p50", 30.0), ("snr_db", "p95", 10.0), ("snr_db", "worst", 5.0))
    assert th.data.top1_agreement == 0.5 and th.data.accuracy_drop == 0.02
    assert Thresholds.from_dict(th.to_dict()) == th, "kept with a failing case, for replay"
    with pytest.raises(SpecError, match="unknown policy key"):
        parse_policy({"outputs": {"x": {"data": {"nope": 1}}}}, "marker")


def test_statistics_are_levels_that_samples_reach() -> None:
    values = np.arange(1.0, 101.0)  # 1..100
    assert statistic(values, "worst") == 1.0 and statistic(values, "mean") == 50.5
    assert statistic(values, "p50") == 50.0, "half the samples reach 50 or more... and one of them is exactly it"
    assert statistic(values, "p95") == 5.0 and statistic(values, "p99") == 1.0
    assert statistic(np.array([3.0, math.inf, math.inf]), "p50") == math.inf, "identical outputs: no interpolation between infinities"


def _over(thresholds: DataThresholds) -> OverData:
    rng = np.random.default_rng(0)
    over = OverData(thresholds)
    for i in range(20):
        ref = rng.normal(size=(1, 4)).astype(np.float32)
        noise = 0.001 if i else 0.5  # sample 0 is the worst
        got = ref + noise * rng.normal(size=(1, 4)).astype(np.float32)
        label = np.array(int(ref.argmax()) if i % 4 else (int(ref.argmax()) + 1) % 4)  # torch right on 15 of 20
        over.add(i, ref, got, label)
    return over


def test_figures_over_the_data_and_their_verdict() -> None:
    over = _over(DataThresholds((("snr_db", "p50", 20.0), ("snr_db", "worst", 5.0)), 0.9, 0.0))
    d = over.distribution("snr_db")
    assert d["p50"] > 50 and d["worst"] < 10 and over.worst_sample() == 0
    assert over.accuracy[0] == 0.75 and over.labelled == 20
    failures = over.failures()
    assert len(failures) == 1 and failures[0].startswith("snr_db worst ") and failures[0].endswith("dB < 5 dB")
    assert "worst" in over.describe(lambda i: f"s{i}.npz") and "(s0.npz)" in over.describe(lambda i: f"s{i}.npz")
    record = over.to_dict(str)
    assert record["worst_sample"] == "0" and record["accuracy"]["labels"] == 20 and record["failed"] == failures


def test_an_accuracy_drop_is_named_with_both_accuracies() -> None:
    over = OverData(DataThresholds((), None, 0.02))
    ref = np.array([[0.0, 1.0]], np.float32)
    for i in range(10):
        over.add(i, ref, ref[:, ::-1] if i < 3 else ref, np.array(1))
    assert over.failures() == ["accuracy against the labels: torch 100%, backend 70% (a drop of 30 points > 2)"]


def test_a_nan_output_counts_as_the_worst() -> None:
    over = OverData(DataThresholds((("cosine", "mean", 0.5),)))
    over.add(0, np.ones((1, 3), np.float32), np.array([[1.0, np.nan, 1.0]], np.float32))
    assert over.distribution("cosine")["worst"] == -math.inf and over.failures() == ["cosine mean -inf < 0.5"]
