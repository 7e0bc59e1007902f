"""Outputs that make a check unable to fail: constant over different inputs, all zeros or all NaN."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import VacuousCheckWarning
from .slices import flat_slices


# -- vacuous checks ----------------------------------------------------------------------------
@dataclass
class VacuityTracker:
    """Watches the reference outputs over a check's examples: an output that is constant over
    different inputs, all zeros or all NaN makes a check that cannot fail (``VacuousCheckWarning``).
    It keeps a digest of each output's first value, not a copy: an output may be gigabytes."""

    first: dict[str, bytes] = field(default_factory=dict)
    constant: dict[str, bool] = field(default_factory=dict)
    zeros: dict[str, bool] = field(default_factory=dict)
    nans: dict[str, bool] = field(default_factory=dict)
    inputs: set[bytes] = field(default_factory=set)

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


    def reasons(self) -> dict[str, str]:
        out = {}
        for name in self.first:
            if self.nans[name]:
                out[name] = "is all NaN"
            elif self.zeros[name]:
                out[name] = "is all zeros"
            elif self.constant[name] and len(self.inputs) > 1:
                out[name] = f"is the same for all {len(self.inputs)} different inputs drawn"
        return out

    def warn(self, model: str, test_id: str, stacklevel: int = 2) -> None:
        """One warning per check naming each vacuous output and why; it points at the test's
        ``check`` call, ``stacklevel`` frames up (the caller counts them)."""
        __tracebackhide__ = True
        reasons = self.reasons()
        if reasons:
            listed = "; ".join(f"output {name!r} {why}" for name, why in reasons.items())
            warnings.warn(
                VacuousCheckWarning(
                    f"{test_id}: the parity check of {model} cannot fail: torch's {listed} over the drawn inputs. "
                    "Draw inputs that reach the model's behaviour (TensorSpec low/high, shapes) or check another output."
                ),
                stacklevel=stacklevel,
            )


def _digest(a: np.ndarray) -> bytes:
    """The output's shape, dtype and bytes, hashed in place (an output equal to another has its
    digest; NaN payloads and the sign of zero count, which only makes "constant" rarer)."""
    import hashlib

    h = hashlib.sha256(f"{a.dtype.str}:{a.shape}".encode())
    for _, (s,) in flat_slices(a):
        h.update(np.ascontiguousarray(s).view(np.uint8) if s.size and not s.dtype.hasobject else s.tobytes())
    return h.digest()
