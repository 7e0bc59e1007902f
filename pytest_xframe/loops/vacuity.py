"""Vacuous generation: torch's own greedy output is degenerate, so tokens that agree prove little.

A default-initialised tiny model emits one token over and over (measured: a random tiny T5
answers 0 twenty times, a random GPT-2 mostly one token per prompt) and its logits are nearly
uniform, so a backend that mishandles the cache still picks the same tokens. Two signs, watched
over every case of a check: each row repeating one token after its first, and logits whose
greedy token is barely likelier than the vocabulary's average.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import VacuousCheckWarning, VacuousGenerationWarning
from ..judge.results import ParityReport
from .sides import Trace

#: fewest greedy tokens in a row before its repetition says anything
MIN_TOKENS = 3
#: a greedy token chosen with probability under this many times 1/vocabulary is from near-uniform logits
UNIFORM_FACTOR = 2.0


@dataclass
class GenerationVacuity:
    """torch's tokens and confidence over a check's cases."""

    rows: int = 0
    repeating: int = 0
    choices: int = 0
    uniform: int = 0

    def see(self, trace: Trace) -> None:
        tokens = trace.tokens()
        if tokens is None:
            return
        if tokens.shape[1] >= MIN_TOKENS:
            self.rows += tokens.shape[0]
            self.repeating += int(np.sum(np.all(tokens[:, 1:] == tokens[:, 1:2], axis=1)))
        for index, output in trace.chosen_from.items():
            logits = np.asarray(trace.runs[index].outputs[output])
            logits = logits.reshape(-1, logits.shape[-1])
            self.choices += logits.shape[0]
            self.uniform += int(np.sum(_top_probability(logits) * logits.shape[-1] < UNIFORM_FACTOR))

    def reason(self) -> str | None:
        if self.rows and self.repeating == self.rows:
            return f"every row of torch's greedy output repeats one token after its first ({self.rows} rows)"
        if self.choices and self.uniform == self.choices:
            return (f"torch's logits are near-uniform: its greedy token was under {UNIFORM_FACTOR:g}x as likely as "
                    f"the vocabulary's average at all {self.choices} choices")
        return None

    def warn(self, model: str, test_id: str, report: ParityReport) -> None:
        """A VacuousGenerationWarning; under ``-W error`` the report's verdicts say so too."""
        __tracebackhide__ = True
        why = self.reason()
        if why is None:
            return
        try:
            warnings.warn(
                VacuousGenerationWarning(
                    f"{test_id}: the generation check of {model} proves little: {why}. A default-initialised tiny "
                    "model does this; train it briefly or construct its weights (docs/generation.md, 'A model whose "
                    "generation means something')."
                ),
                # warn < _Tracker.finish < _check_cases < _run_loop < run.run_loop_check < loops.run_loop_check
                # < Xframe._check < Xframe.check_generation < the test's call
                stacklevel=9,
            )
        except VacuousCheckWarning as exc:
            for result in report.backends.values():
                result.vacuous = str(exc)  # the verdict says so (``judge.decide``)
            raise


def _top_probability(logits: np.ndarray) -> np.ndarray:
    """softmax's largest probability per row."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return 1.0 / np.exp(z).sum(axis=-1)
