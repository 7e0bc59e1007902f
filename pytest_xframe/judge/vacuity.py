"""Outputs that make a check unable to fail: constant over different inputs, all zeros, all NaN, or
so small that a backend returning zeros would pass their tolerance."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import VacuousCheckWarning
from . import metrics
from .policy import Thresholds
from .slices import flat_slices
from .verdict import ExampleFigures, Judged, failed_thresholds


# -- vacuous checks ----------------------------------------------------------------------------
def zeros_would_pass(ref: np.ndarray, th: Thresholds, equal_nan: bool) -> bool:
    """Whether a backend returning all zeros would pass this example's per-example thresholds:
    the reference lies within the tolerance of zero (its scale is below atol), and no cosine or
    SNR threshold (which zeros always fail) is judged, per example or over the samples of
    ``data=`` (a quantized target judged over its data: zeros fail its SNR levels)."""
    if th.data:
        return False
    zeros = np.zeros_like(ref)
    f = ExampleFigures(metrics.mismatch_share(ref, zeros, th.atol, th.rtol, equal_nan), metrics.cosine(ref, zeros), metrics.snr_db(ref, zeros), 0.0)
    return not failed_thresholds(f, th)


@dataclass
class VacuityTracker:
    """Watches the reference outputs over a check's examples: an output that is constant over
    different inputs, all zeros, all NaN, or so small that a backend returning zeros would pass its
    tolerance makes a check that cannot fail (``VacuousCheckWarning``).
    It keeps a digest of each output's first value, not a copy: an output may be gigabytes."""

    first: dict[str, bytes] = field(default_factory=dict)
    constant: dict[str, bool] = field(default_factory=dict)
    zeros: dict[str, bool] = field(default_factory=dict)
    nans: dict[str, bool] = field(default_factory=dict)
    inputs: set[bytes] = field(default_factory=set)
    #: output -> backend -> the thresholds it was judged by while zeros would still have passed
    #: every example; None from the first example where they would not
    small: dict[str, dict[str, Thresholds | None]] = field(default_factory=dict)
    #: output -> the largest magnitude seen
    peak: dict[str, float] = field(default_factory=dict)

    def see(self, feeds_digest: bytes, reference: Mapping[str, np.ndarray]) -> None:
        self.inputs.add(feeds_digest)
        for name, value in reference.items():
            a = np.asarray(value)
            if name not in self.first:
                self.first[name] = _digest(a)
                self.constant[name] = self.zeros[name] = self.nans[name] = True
            elif self.constant[name]:
                self.constant[name] = self.first[name] == _digest(a)
            if not (self.zeros[name] or self.nans[name]):
                continue  # both settled on the first informative example: nothing to scan after that
            numeric = a.dtype.kind in "biufc"
            self.zeros[name] &= numeric and a.size > 0 and not any(np.any(s) for _, (s,) in flat_slices(a))
            self.nans[name] &= a.dtype.kind in "fc" and a.size > 0 and all(bool(np.all(np.isnan(s))) for _, (s,) in flat_slices(a))


    def see_judged(self, backend: str, reference: Mapping[str, np.ndarray], judged: list[Judged], equal_nan: bool) -> None:
        """One backend's judgement of an example: does each float output's tolerance still swallow
        the whole output (zeros would pass)? Settled per output and backend at the first 'no'."""
        for j in judged:
            name = j.comparison.name
            ref = np.asarray(reference[name])
            if ref.dtype.kind != "f" or not ref.size or self.small.get(name, {}).get(backend, True) is None:
                continue
            if zeros_would_pass(ref, j.thresholds, equal_nan):
                self.small.setdefault(name, {})[backend] = j.thresholds
                finite = np.abs(ref[np.isfinite(ref)])
                self.peak[name] = max(self.peak.get(name, 0.0), float(finite.max()) if finite.size else 0.0)
            else:
                self.small.setdefault(name, {})[backend] = None

    def reasons(self) -> dict[str, tuple[str, str]]:
        """Output -> (kind, why) for each output that makes the check vacuous; kind is one of
        nan, zeros, constant, small."""
        n = len(self.inputs)
        drawn = f"over the {n} inputs drawn" if n != 1 else "on the one input drawn"
        out = {}
        for name in self.first:
            small = {b: th for b, th in self.small.get(name, {}).items() if th is not None}
            if self.nans[name]:
                out[name] = ("nan", f"is all NaN {drawn}")
            elif self.zeros[name]:
                out[name] = ("zeros", f"is all zeros {drawn}")
            elif self.constant[name] and n > 1:
                out[name] = ("constant", f"is the same for all {n} different inputs drawn")
            elif small:
                th = next(iter(small.values()))
                out[name] = ("small", (
                    f"is at most {self.peak.get(name, 0.0):.2g} in magnitude {drawn}, within the tolerance of zero "
                    f"(atol={th.atol:g}, rtol={th.rtol:g}) on {', '.join(small)}: a backend returning zeros would pass"
                ))
        return out

    def warn(self, model: str, test_id: str, stacklevel: int = 2) -> None:
        """One warning per check naming each vacuous output and why; it points at the test's
        ``check`` call, ``stacklevel`` frames up (the caller counts them)."""
        __tracebackhide__ = True
        reasons = self.reasons()
        if reasons:
            listed = "; ".join(f"output {name!r} {why}" for name, (_, why) in reasons.items())
            warnings.warn(VacuousCheckWarning(
                f"{test_id}: the parity check of {model} cannot fail: torch's {listed}. " + _vacuity_advice({k for k, _ in reasons.values()})
            ), stacklevel=stacklevel)


def _vacuity_advice(kinds: set[str]) -> str:
    """What to do about each kind of vacuous output: other inputs, weights at their real scale, a tolerance."""
    advice = []
    if kinds & {"nan", "zeros", "constant"}:
        advice.append("Draw inputs that reach the model's behaviour (TensorSpec low/high, shapes) or check another output.")
    weights = ("give the model weights that bring its outputs to their real scale (calibrated batch-norm statistics, "
               "a reinitialised zero head: docs/random-weights.md)")
    if "small" in kinds:
        advice.append(weights[0].upper() + weights[1:] + ", or judge it with a tolerance below that scale.")
    elif kinds & {"zeros", "constant"}:
        advice.append(f"Random weights at a library's default initialisation do this too: {weights}.")
    return " ".join(advice)


def _digest(a: np.ndarray) -> bytes:
    """The output's shape, dtype and bytes, hashed in place (an output equal to another has its
    digest; NaN payloads and the sign of zero count, which only makes "constant" rarer)."""
    import hashlib

    h = hashlib.sha256(f"{a.dtype.str}:{a.shape}".encode())
    for _, (s,) in flat_slices(a):
        h.update(np.ascontiguousarray(s).view(np.uint8) if s.size and not s.dtype.hasobject else s.tobytes())
    return h.digest()
