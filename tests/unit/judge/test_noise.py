"""noise.py and the magnitude-scaled fp32 atol (judge.in_force): real float32 rounding, numpy only."""

from __future__ import annotations

import numpy as np

from pytest_xframe.judge.compare import compare_output
from pytest_xframe.judge.data_policy import DataThresholds
from pytest_xframe.judge.noise import accumulation_noise, describe_noise
from pytest_xframe.judge.policy import Thresholds, TopK
from pytest_xframe.judge.vacuity import zeros_would_pass
from pytest_xframe.judge.verdict import in_force, wants_topk


def _sums(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The same float32 dot products summed in two orders: what two runtimes do."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 512)).astype(np.float32)
    b = rng.standard_normal(512).astype(np.float32) * np.float32(scale)
    forward = np.zeros(256, np.float32)
    for i in range(512):
        forward += a[:, i] * b[i]
    backward = np.zeros(256, np.float32)
    for i in reversed(range(512)):
        backward += a[:, i] * b[i]
    return forward, backward


def test_summation_order_noise_is_recognised_and_a_real_error_is_not() -> None:
    ref, got = _sums(100.0)
    c = compare_output("y", ref, got, atol=1e-6, rtol=0.0)
    assert not c.ok  # order alone moves the sums by more than a tight atol
    noise = accumulation_noise(c, ref, got)
    assert noise is not None and noise.snr_db > 110 and noise.max_abs < 1e-5 * noise.rms
    assert noise.fitting_atol >= 2 * noise.max_abs and compare_output("y", ref, got, noise.fitting_atol, 0.0).ok
    text = describe_noise([noise], nodes=16)
    assert text.startswith("diagnosis: fp32 accumulation-order noise, not a broken step")
    assert "summed over 16 ONNX nodes" in text and f"atol={noise.fitting_atol:.1g}" in text
    broken = got.copy()
    broken[:8] = 0.0  # a few elements lost: a bug, not rounding
    assert accumulation_noise(compare_output("y", ref, broken, 1e-6, 0.0), ref, broken) is None


def test_the_default_atol_grows_with_the_output_and_a_set_one_does_not() -> None:
    default = Thresholds(atol=1e-5, rtol=1e-4, atol_scale=1e-4)
    for scale in (1.0, 1e3):
        ref, got = _sums(scale)
        th = in_force(default, ref)
        assert th.atol == max(1e-5, 1e-4 * float(np.sqrt(np.mean(ref.astype(np.float64) ** 2))))
        assert compare_output("y", ref, got, th.atol, th.rtol).ok
    ref, got = _sums(1e3)
    # on its own (rtol 0), the scaled atol covers the rounding of sums in the ten-thousands; 1e-5 does not
    assert compare_output("y", ref, got, in_force(default, ref).atol, 0.0).ok and not compare_output("y", ref, got, 1e-5, 0.0).ok
    fixed = Thresholds(atol=1e-5, rtol=1e-4)  # an atol the user set: used as given
    assert in_force(fixed, ref) is fixed
    assert in_force(default, np.full(4, np.inf, np.float32)).atol == 1e-5  # no finite magnitude: the floor


def test_zeros_would_pass_an_output_below_its_tolerance_only() -> None:
    th = Thresholds(atol=1e-5, rtol=1e-4)
    tiny = np.full(10, 3e-6, np.float32)
    assert zeros_would_pass(tiny, th, False)
    assert not zeros_would_pass(tiny * 10, th, False)
    assert not zeros_would_pass(tiny, Thresholds(atol=1e-5, rtol=1e-4, cosine=0.99), False)  # a cosine judges the shape
    # judged over the samples of data= (an int8 target's defaults): zeros fail its SNR levels
    over_data = Thresholds(atol=1e-5, rtol=1e-4, data=DataThresholds(levels=(("snr_db", "median", 20.0),)))
    assert not zeros_would_pass(tiny, over_data, False)


def test_top_k_is_for_class_scores() -> None:
    th = Thresholds(atol=1e-5, rtol=1e-4)
    scores = np.zeros((2, 10), np.float32)
    assert wants_topk("logits", scores, th) and wants_topk("out.pred_logits", scores, th) and wants_topk("cls_scores", scores, th)
    assert not wants_topk("boxes", np.zeros((5, 4), np.float32), th)
    assert not wants_topk("output_0", scores, th) and not wants_topk("scores", np.zeros(5, np.float32), th)
    assert wants_topk("embedding", scores, Thresholds(atol=1e-5, rtol=1e-4, topk=TopK(3)))  # declared
