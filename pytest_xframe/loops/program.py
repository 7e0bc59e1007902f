"""What a loop is: graphs exported once each, cases hypothesis draws, and a program that runs the
graphs step by step on one *side* (torch, or one backend).

The program builds every step's feeds from what that side returned before, so each side feeds
back its own state (an RNN's hidden state, a KV cache, a chosen token). It asks the side for two
things only: run a graph on feeds, and choose a greedy token from logits. The check's sides
(``loops.sides``) compare each run and each choice with torch's as they happen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..inputs.spec import InputSlot


@dataclass(frozen=True)
class Graph:
    """One graph of a loop: a torch module with named inputs, exported and converted once."""

    name: str
    module: Any
    slots: tuple[InputSlot, ...]
    #: concrete inputs to export with, from a torch run; None: drawn from the slots' specs
    example: Mapping[str, np.ndarray] | None = field(default=None, compare=False)
    #: ``forward`` takes the inputs positionally in ``slots`` order (else by keyword)
    positional: bool = True


class Side(Protocol):
    """Torch or one backend, as a program sees it."""

    def run(self, graph: str, label: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``graph`` on ``feeds``; ``label`` names the step in messages."""

    def greedy(self, output: str, logits: np.ndarray) -> np.ndarray:
        """The token (index over the last axis) fed on: argmax of this side's ``logits``, or
        torch's choice where a check follows torch after a near-tie (``loops.sides``)."""


class Case(Protocol):
    """One drawn input of a loop (a prompt batch and a number of new tokens, say)."""

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything drawn, as named arrays: the case's identity and what a kept case saves."""

    def describe(self, row: int) -> str:
        """One row of the case in words, for a failure message (the prompt, its padding)."""


@dataclass(frozen=True)
class Loop:
    """A loop ready to check: its graphs, the hypothesis strategy of its cases and its program."""

    graphs: tuple[Graph, ...]
    #: a hypothesis strategy of ``Case``s
    cases: Any
    #: ``drive(case, side)``: run the whole loop on one side
    drive: Callable[[Any, Side], None]
    #: the outputs compared at every run (None: all); the others are compared at a failing run
    compared: tuple[str, ...] | None = None
    #: cases run before hypothesis draws any (prompts the user gave)
    explicit: tuple[Any, ...] = ()
    #: greedy generation: warn when torch's own tokens are degenerate (``loops.vacuity``)
    generates: bool = False

    def graph(self, name: str) -> Graph:
        return next(g for g in self.graphs if g.name == name)


def argmax_tokens(logits: np.ndarray) -> np.ndarray:
    """Greedy choice over the last axis (ties go to the lowest index, as torch.argmax on CPU)."""
    return np.argmax(np.asarray(logits), axis=-1)


@dataclass(frozen=True)
class Greedy:
    """A feedback source: the argmax over the last axis of an output (a token chosen from logits)."""

    output: str

    def feed(self, outputs: Mapping[str, np.ndarray], slot: InputSlot, side: Side) -> np.ndarray:
        """The choice, cast to the input's dtype and given the input's rank (a trailing axis of 1)."""
        chosen = side.greedy(self.output, outputs[self.output])
        dtype = np.dtype(slot.spec.dtype) if slot.spec is not None else np.dtype(np.int64)
        rank = len(slot.spec.shape) if slot.spec is not None else chosen.ndim
        while chosen.ndim < rank:
            chosen = chosen[..., None]
        return chosen.astype(dtype)


def greedy(output: str) -> Greedy:
    """``feedback={"token": greedy("logits")}``: feed the argmax of ``logits`` to ``token``."""
    if not isinstance(output, str) or not output:
        from ..errors import SpecError

        raise SpecError(f"greedy() takes the name of an output, got {output!r}")
    return Greedy(output)
