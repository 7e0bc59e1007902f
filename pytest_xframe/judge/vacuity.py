"""Outputs that make a check unable to fail: constant over different inputs, all zeros or all NaN."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import VacuousCheckWarning


# -- vacuous checks ----------------------------------------------------------------------------
@dataclass
class VacuityTracker:
    """Watches the reference outputs over a check's examples: an output that is constant over
    different inputs, all zeros or all NaN makes a check that cannot fail (``VacuousCheckWarning``)."""

    first: dict[str, np.ndarray] = field(default_factory=dict)
    constant: dict[str, bool] = field(default_factory=dict)
    zeros: dict[str, bool] = field(default_factory=dict)
    nans: dict[str, bool] = field(default_factory=dict)
    inputs: set[bytes] = field(default_factory=set)

    def see(self, feeds_digest: bytes, reference: Mapping[str, np.ndarray]) -> None:
        self.inputs.add(feeds_digest)
        for name, value in reference.items():
            a = np.asarray(value)
            if name not in self.first:
                self.first[name] = np.array(a, copy=True)
                self.constant[name] = self.zeros[name] = self.nans[name] = True
            elif self.constant[name]:
                first = self.first[name]
                self.constant[name] = first.shape == a.shape and bool(np.array_equal(first, a, equal_nan=a.dtype.kind in "fc"))
            if not (self.zeros[name] or self.nans[name]):
                continue  # both settled on the first informative example: no conversion per example after that
            as_float = np.abs(a).astype(np.float64) if a.dtype.kind == "c" else a.astype(np.float64) if a.dtype.kind in "biuf" else None
            if as_float is not None:
                self.zeros[name] &= a.size > 0 and not np.any(as_float)
                self.nans[name] &= a.size > 0 and bool(np.all(np.isnan(as_float)))
            else:
                self.zeros[name] = self.nans[name] = False

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
