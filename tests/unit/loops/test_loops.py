"""The loop check's pure parts (numpy and hypothesis only): prompt batches, traces, judging runs
and greedy choices, vacuous generation. The sessions that run them are in test_generation.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings

from pytest_xframe.judge.policy import Thresholds
from pytest_xframe.judge.results import BackendResult
from pytest_xframe.loops.judging import Agreement, Divergence, Run, StepJudge, top2_margin
from pytest_xframe.loops.prompts import Bounds, PromptCase, left_padded, positions, prompt_cases, seq2seq_cases
from pytest_xframe.loops.sides import BackendSide, TorchSide, Trace
from pytest_xframe.loops.vacuity import GenerationVacuity

FP32 = Thresholds(atol=1e-5, rtol=1e-4)


def test_left_padding_and_positions_follow_generate() -> None:
    ids, mask = left_padded([[5, 6, 7], [8]], pad=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    # transformers' generate: cumsum(mask) - 1, pads at 1
    assert positions(mask).tolist() == [[0, 1, 2], [1, 1, 0]]


@settings(max_examples=30, deadline=None)
@given(prompt_cases(Bounds(batch=(1, 3), prompt_length=(1, 5), new_tokens=(1, 4), forced=(0, 2), vocab=50, pad=0)))
def test_prompt_cases_stay_in_bounds(case: PromptCase) -> None:
    batch, width = case.ids.shape
    assert 1 <= batch <= 3 and 1 <= case.new_tokens <= 4
    lengths = case.mask.sum(axis=1)
    assert lengths.max() == width and lengths.min() >= 1
    # the prefill always holds a real token of every row; at most `forced` columns go through decode
    assert width - lengths.min() < case.prefill <= width and width - case.prefill <= 2
    assert case.ids.max() < 50 and ((case.ids == 0) | (case.mask == 1)).all()


@settings(max_examples=20, deadline=None)
@given(seq2seq_cases(Bounds(batch=(1, 2), prompt_length=(1, 3), new_tokens=(1, 2), forced=(0, 3), vocab=20, pad=1)))
def test_seq2seq_cases_give_every_row_one_prefix(case) -> None:
    assert case.prefix.shape[0] == case.ids.shape[0] and 0 <= case.prefix.shape[1] <= 3
    assert "decoder prefix" in case.describe(0)


def _trace() -> Trace:
    side = TorchSide(lambda graph, feeds: {"logits": feeds["x"] * 2.0, "state": feeds["x"] + 1.0})
    out = side.run("step", "step 1", {"x": np.array([[0.1, 0.9, 0.3]], np.float32)})
    side.greedy("logits", out["logits"])
    side.run("step", "step 2", {"x": np.array([[0.5, 0.2, 0.4]], np.float32)})
    return side.trace


def test_trace_round_trips_through_named_arrays() -> None:
    trace = _trace()
    back = Trace.from_arrays(trace.to_arrays())
    assert [(r.graph, r.label) for r in back.runs] == [("step", "step 1"), ("step", "step 2")]
    assert np.array_equal(back.runs[1].outputs["state"], trace.runs[1].outputs["state"])
    assert back.chosen_from == {0: "logits"} and back.tokens().tolist() == [[1]]


def _judge(per_step: bool = True, thresholds: Thresholds = FP32) -> StepJudge:
    return StepJudge(lambda output, dtype: thresholds, per_step, False, BackendResult("b"))


def test_a_run_out_of_policy_is_the_divergence_and_earlier_runs_show_their_error() -> None:
    trace, judge = _trace(), _judge()
    side = BackendSide(lambda graph, feeds: {"logits": feeds["x"] * 2.0, "state": feeds["x"] + 1.0 + (feeds["x"][0, 0] == 0.5)}, trace, judge)
    side.run("step", "step 1", trace.runs[0].feeds)
    with pytest.raises(Divergence) as info:
        side.run("step", "step 2", trace.runs[1].feeds)
    assert info.value.kind == "logits" and info.value.run == 1
    assert [e["state"] for _, e in judge.errors] == [0.0, pytest.approx(1.0)]


def test_a_flip_within_the_policy_is_a_tie_and_tie_margin_narrows_it() -> None:
    ref_logits = np.array([[4.0, 4.0 - 2e-5, 1.0]], np.float32)  # torch picks 0; 1 trails by 2e-5
    judge = _judge()
    judge.choice(0, "prefill", "logits", own=np.array([1]), ref=np.array([0]), ref_logits=ref_logits)
    tie = judge.ties[0]
    assert (tie.torch_token, tie.backend_token) == (0, 1) and tie.gap == pytest.approx(2e-5, rel=0.1)
    assert tie.allowed == pytest.approx(2e-5 + 8e-4, rel=1e-3)  # 2 atol + rtol (|4| + |4|)
    strict = _judge(thresholds=Thresholds(atol=1e-5, rtol=1e-4, tie_margin=1e-6))
    with pytest.raises(Divergence, match=r"leads 1 by 2e-05 > 1e-06 \(tie_margin\)"):
        strict.choice(0, "prefill", "logits", own=np.array([1]), ref=np.array([0]), ref_logits=ref_logits)


def test_top2_margin() -> None:
    assert top2_margin(np.array([1.0, 3.0, 2.5])) == pytest.approx(0.5)
    assert top2_margin(np.array([7.0])) == math.inf


def test_reduced_precision_is_judged_over_the_steps_by_snr_and_token_agreement() -> None:
    rng = np.random.default_rng(0)
    loose = Thresholds(atol=0.0, rtol=0.0, max_mismatch=None, snr_db=20.0, token_agreement=0.75)
    judge = _judge(per_step=False, thresholds=loose)
    for i in range(4):  # each step a little off: not a failure by itself
        ref = rng.normal(size=(1, 8)).astype(np.float32)
        judge.step(i, Run("decode", f"step {i}", {}, {"logits": ref}), {"logits": ref + np.float32(0.01)})
        judge.choice(i, f"step {i}", "logits", own=np.array([i % 2]), ref=np.array([0]), ref_logits=ref)
    with pytest.raises(Divergence, match=r"token agreement 2/4 \(50%\) < 75% over the steps"):
        judge.finish_case()
    agreement = Agreement()
    agreement.add(judge)
    assert agreement.note().startswith("token agreement 2/4 (50%); logits SNR over the steps >= ")


def test_degenerate_generation_is_named() -> None:
    repeating = Trace()
    for i in range(4):
        logits = np.zeros((2, 10), np.float32)
        logits[:, 3] = 5.0
        repeating.runs.append(Run("decode", f"step {i}", {}, {"logits": logits}))
        repeating.choices[i], repeating.chosen_from[i] = np.array([3, 3]), "logits"
    vacuity = GenerationVacuity()
    vacuity.see(repeating)
    assert vacuity.reason() == "every row of torch's greedy output repeats one token after its first (2 rows)"
    uniform = Trace(repeating.runs[:1], {0: np.array([3, 3])}, {0: "logits"})
    uniform.runs[0] = Run("decode", "step 0", {}, {"logits": np.full((2, 10), 0.01, np.float32)})
    flat = GenerationVacuity()
    flat.see(uniform)
    assert flat.reason().startswith("torch's logits are near-uniform")
