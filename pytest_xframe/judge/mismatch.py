"""A mismatch as a value: what failed on one example for one backend.

The input, torch's outputs and the backend's, and per output the comparison figures, the policy
that judged them and what failed; once diagnosed, the step (export, conversion, runtime) that
introduced the error. The check loop makes one per failing backend, diagnosis and the kept case
read them, the verdict is decided from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .compare import OutputComparison
from .verdict import Judged


@dataclass(frozen=True)
class Mismatch:
    """One backend failing its policy on one example."""

    backend: str
    #: the example (input name -> array)
    feeds: Mapping[str, np.ndarray]
    #: torch's outputs and the backend's, by output name
    reference: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    #: every output of the example: figures (``comparison``), policy (``thresholds``), what failed
    judged: tuple[Judged, ...]
    #: the step that introduced the error ("export", "conversion", "runtime", "unknown"), once diagnosed
    step: str | None = None
    #: the report's line, where the failing outputs alone do not say it (a loop: the step that diverged and why)
    summary: str | None = None

    @property
    def comparisons(self) -> list[OutputComparison]:
        return [j.comparison for j in self.judged]

    @property
    def failing(self) -> list[Judged]:
        """The outputs that failed their policy."""
        return [j for j in self.judged if not j.comparison.ok]

    def message(self) -> str:
        """One line per failing output for the report: the problem, the failed thresholds or the worst
        error; or the ``summary`` given."""
        if self.summary is not None:
            return self.summary
        return "; ".join(
            f"{c.name}: {c.problem or ', '.join(j.failed) or f'max abs {c.max_abs:.3g}'}" for j in self.failing for c in (j.comparison,)
        )
