"""The generic loop: one step module run N times, some inputs fed from the step before.

``feedback`` maps an input of ``step`` to where its next value comes from: an output name (an
RNN's state, a sampler's latent) or ``greedy(output)`` (a token chosen from logits). The other
inputs are drawn afresh for every step. hypothesis draws the number of steps, the shared dynamic
sizes, the fed inputs' first values and every step's drawn inputs; shrinking looks for the fewest
steps that still diverge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from ..check.preflight import validate_model
from ..errors import SpecError
from ..formatting import describe_array
from ..inputs.spec import Dim, InputSlot, bind_inputs, calls_positionally
from ..inputs.strategies import Feeds, feeds_strategy, shared_dims
from .program import Graph, Greedy, Loop, Side

#: the most steps a loop may run per case: each is a run on every backend
MAX_STEPS = 512


@dataclass(frozen=True)
class StepCase:
    """One drawn run of the loop: the fed inputs' first values and each step's drawn inputs."""

    initial: Feeds
    drawn: tuple[Feeds, ...]

    @property
    def steps(self) -> int:
        return len(self.drawn)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"initial/{k}": v for k, v in self.initial.items()}
        out.update({f"step{i}/{k}": v for i, feeds in enumerate(self.drawn) for k, v in feeds.items()})
        return out or {"steps": np.array(self.steps)}

    def describe(self, row: int) -> str:
        first = ", ".join(f"{k}={describe_array(v)}" for k, v in self.initial.items())
        return f"{self.steps} step(s); first state {first or '(none)'}"

    def __repr__(self) -> str:
        return f"StepCase(steps={self.steps}, initial={self.initial!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis would otherwise print how the case was built


def _sources(feedback: Any, slots: tuple[InputSlot, ...], name: str) -> dict[str, str | Greedy]:
    """``feedback`` validated against the step's inputs."""
    if not isinstance(feedback, Mapping) or not feedback:
        raise SpecError(
            f"feedback must be a non-empty dict of input name -> output name (or greedy(output)), got {feedback!r}",
            model=name, hint='e.g. feedback={"h": "h_next"} feeds output h_next to input h at the next step',
        )
    inputs = {s.name for s in slots}
    for target, source in feedback.items():
        if target not in inputs:
            raise SpecError(f"feedback feeds input {target!r}, which the step does not take", model=name,
                            hint=f"the step's inputs: {', '.join(sorted(inputs))}")
        if not isinstance(source, (str, Greedy)) or not source:
            raise SpecError(f"feedback for input {target!r} must be an output name or greedy(output), got {source!r}", model=name)
    return dict(feedback)


def _step_range(steps: Any, name: str) -> tuple[int, int]:
    """``steps``: an int, or a ``Dim`` whose range hypothesis draws from."""
    if isinstance(steps, Dim):
        low, high = max(steps.min, 1), steps.max
    elif isinstance(steps, int) and not isinstance(steps, bool):
        low = high = steps
    else:
        raise SpecError(f"steps must be an int or a Dim, got {steps!r}", model=name, hint='e.g. steps=8 or steps=Dim("steps", 1, 12)')
    if not 1 <= low <= high <= MAX_STEPS:
        raise SpecError(f"steps must lie in 1..{MAX_STEPS}, got {steps!r}", model=name)
    return low, high


def _check_outputs(step: Any, slots: tuple[InputSlot, ...], sources: dict[str, str | Greedy], name: str) -> None:
    """Every fed output exists: the step runs once on its spec's example (before anything is exported)."""
    from ..check.forward import Forward
    from ..export.to_onnx import example_feeds

    outputs = Forward(step, slots, calls_positionally(step, slots), name).outputs(example_feeds(slots))
    for target, source in sources.items():
        wanted = source.output if isinstance(source, Greedy) else source
        if wanted not in outputs:
            raise SpecError(f"feedback for input {target!r} names output {wanted!r}, which the step does not return", model=name,
                            hint=f"the step's outputs: {', '.join(outputs)}")


def _pinned(slots: tuple[InputSlot, ...], sizes: Mapping[str, int]) -> tuple[InputSlot, ...]:
    """The slots with every ``Dim`` fixed at its drawn size (one size for the whole loop)."""

    def pin(d: Any) -> Any:
        return Dim(d.name, sizes[d.name], sizes[d.name]) if isinstance(d, Dim) else d

    return tuple(replace(s, spec=replace(s.spec, shape=tuple(pin(d) for d in s.spec.shape))) if s.spec is not None else s for s in slots)


def step_cases(slots: tuple[InputSlot, ...], fed: tuple[str, ...], steps: tuple[int, int]) -> Any:
    """A strategy of ``StepCase``: shared sizes and the number of steps first, then the values."""
    from hypothesis import strategies as st

    dims = shared_dims(slots)
    initial = tuple(s for s in slots if s.name in fed)
    drawn = tuple(s for s in slots if s.name not in fed)

    def values(sizes: dict[str, int]) -> Any:
        pinned_initial, pinned_drawn = _pinned(initial, sizes), _pinned(drawn, sizes)
        per_step = feeds_strategy(pinned_drawn) if pinned_drawn else st.just(Feeds())
        return st.builds(
            lambda first, each: StepCase(first, tuple(each)),
            feeds_strategy(pinned_initial) if pinned_initial else st.just(Feeds()),
            st.integers(*steps).flatmap(lambda n: st.lists(per_step, min_size=n, max_size=n)),
        )

    return st.fixed_dictionaries({n: st.integers(d.min, d.max) for n, d in dims.items()}).flatmap(values)


def _drive(sources: dict[str, str | Greedy], slots: dict[str, InputSlot], case: StepCase, side: Side) -> None:
    state: dict[str, np.ndarray] = dict(case.initial)
    for i, drawn in enumerate(case.drawn):
        outputs = side.run("step", f"step {i + 1} of {case.steps}", {**drawn, **state})
        state = {target: _fed(source, outputs, slots[target], side) for target, source in sources.items()}


def _fed(source: str | Greedy, outputs: Mapping[str, np.ndarray], slot: InputSlot, side: Side) -> np.ndarray:
    return source.feed(outputs, slot, side) if isinstance(source, Greedy) else outputs[source]


def step_loop(step: Any, name: str, inputs: Any, feedback: Any, steps: Any) -> Loop:
    """The ``Loop`` of ``xframe.check_loop``; every mistake a SpecError before anything runs."""
    validate_model(step, name)
    slots = bind_inputs(step, inputs, name)
    shared_dims(slots)
    sources = _sources(feedback, slots, name)
    low_high = _step_range(steps, name)
    _check_outputs(step, slots, sources, name)
    graph = Graph("step", step, slots, None, calls_positionally(step, slots))
    return Loop(
        graphs=(graph,), cases=step_cases(slots, tuple(sources), low_high),
        drive=partial(_drive, sources, {s.name: s for s in slots}),
    )
