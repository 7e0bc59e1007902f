"""fp32 accumulation-order noise: a mismatch that is rounding, not a broken export or conversion.

Two runtimes that compute the same float32 network sum its products in different orders (other
kernels, fused ops, other threads). Each operation rounds to 2^-24 of its magnitude, so their
outputs differ by about ``2^-24 x sqrt(operations) x the output's magnitude``: the error grows with
the output's scale and the network's depth, never with a step's mistake. Measured on a zoo of vision
models (``benchmarks/zoo.py --measure``, ``docs/random-weights.md``): the largest error is 1e-7 to
9e-6 of the output's RMS, SNR 110-142 dB, on ONNX Runtime and on TensorFlow alike.

:func:`accumulation_noise` recognises a failing output at that level; the diagnosis then says so,
with the figures and a tolerance that fits, instead of blaming a step. numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import metrics
from .compare import OutputComparison
from .policy import DEFAULT_TOLERANCES

__all__ = ["Noise", "accumulation_noise", "describe_noise"]

#: float32's unit roundoff: the relative error of one rounding
FP32_EPS = 2.0**-24
#: the default rtol of float32 outputs, which the default atol grows with (``policy.SCALED_ATOL``)
FP32_RTOL = DEFAULT_TOLERANCES["float32"][1]
#: a mismatch is noise when every one of these holds (the zoo's worst fp32 figures: SNR 110 dB,
#: largest error 9e-6 of the RMS: a margin of 20 dB and 10x)
NOISE_SNR_DB = 90.0
NOISE_COSINE = 0.999999
#: the largest error, as a share of the output's RMS
NOISE_RELATIVE = 1e-4


@dataclass(frozen=True)
class Noise:
    """A failing output whose error is at fp32 accumulation-noise level, with its figures."""

    output: str
    mismatches: int
    total: int
    worst_ratio: float
    cosine: float
    snr_db: float
    rms: float
    max_abs: float
    atol: float
    rtol: float

    @property
    def fitting_atol(self) -> float:
        """An atol with margin: twice the largest error, rounded up to one significant digit."""
        value = 2.0 * self.max_abs
        if value <= 0.0:
            return self.atol
        digits = 10.0 ** math.floor(math.log10(value))
        return math.ceil(value / digits) * digits


def accumulation_noise(c: OutputComparison, ref: np.ndarray, got: np.ndarray) -> Noise | None:
    """The failing float32 output ``c`` as :class:`Noise`, or None when its error is more than noise."""
    ref, got = np.asarray(ref), np.asarray(got)
    if c.problem or c.ok or ref.dtype != np.float32 or got.dtype != np.float32 or not ref.size:
        return None
    if not (np.isfinite(ref).all() and np.isfinite(got).all()):
        return None
    scale = metrics.rms(ref)
    snr, cos = metrics.snr_db(ref, got), metrics.cosine(ref, got)
    noise = (
        scale > 0.0 and snr >= NOISE_SNR_DB and cos >= NOISE_COSINE and c.max_abs <= NOISE_RELATIVE * scale
    )
    if not noise:
        return None
    return Noise(c.name, c.mismatches, c.total, c.tolerance_ratio, cos, snr, scale, c.max_abs, c.atol, c.rtol)


def describe_noise(found: list[Noise], nodes: int | None) -> str:
    """The diagnosis of a failure whose every failing output is noise: the figures, why they are
    noise for this depth and magnitude, and a tolerance that fits."""
    lines = ["diagnosis: fp32 accumulation-order noise, not a broken step: each runtime sums in its own order, and float32 rounds every sum"]
    for n in found:
        lines.append(
            f"output {n.output!r}: {n.mismatches} / {n.total} elements ({100.0 * n.mismatches / n.total:.3g}%) over "
            f"atol={n.atol:g}, rtol={n.rtol:g} (worst {n.worst_ratio:.2g}x the tolerance), cosine {n.cosine:.6f}, SNR {n.snr_db:.0f} dB"
        )
        expected = f"; rounding (2^-24) summed over {nodes} ONNX nodes gives about {FP32_EPS * math.sqrt(nodes):.1g} x the RMS" if nodes else ""
        lines.append(
            f"  the error's RMS is {10.0 ** (-n.snr_db / 20.0):.1g} x the output's RMS ({n.rms:.3g}), the largest error "
            f"{n.max_abs:.2g} is {n.max_abs / n.rms:.1g} x the RMS{expected}"
        )
    fitting = max(n.fitting_atol for n in found)
    advice = f"a tolerance that fits this magnitude: atol={fitting:.1g} (twice the largest error)"
    default = max(FP32_RTOL * n.rms for n in found)
    if all(n.atol < FP32_RTOL * n.rms for n in found):  # an atol the user set, below what the default would be
        advice += f"; or leave atol unset: the default fp32 atol grows to {FP32_RTOL:g} x the output's RMS ({default:.2g} here)"
    return "\n".join([*lines, advice])
