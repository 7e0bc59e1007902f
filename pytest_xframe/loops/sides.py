"""The two kinds of side a loop program runs on: torch, which records the reference trace, and a
backend, which is judged against that trace run by run as it goes (``loops.judging``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .judging import Run, StepJudge
from .program import argmax_tokens


@dataclass
class Trace:
    """torch's runs of one case and the greedy tokens it chose (by the run they came from)."""

    runs: list[Run] = field(default_factory=list)
    choices: dict[int, np.ndarray] = field(default_factory=dict)
    #: the output each choice was the argmax of
    chosen_from: dict[int, str] = field(default_factory=dict)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The trace as named arrays (what the engine's reference memo keeps)."""
        out: dict[str, np.ndarray] = {}
        for i, run in enumerate(self.runs):
            out[f"{i}/graph"], out[f"{i}/label"] = np.array(run.graph), np.array(run.label)
            out.update({f"{i}/feeds/{k}": v for k, v in run.feeds.items()})
            out.update({f"{i}/outputs/{k}": v for k, v in run.outputs.items()})
        out.update({f"{i}/choice": v for i, v in self.choices.items()})
        out.update({f"{i}/choice_from": np.array(v) for i, v in self.chosen_from.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Trace:
        trace = cls()
        count = sum(k.endswith("/graph") for k in arrays)
        for i in range(count):
            parts: dict[str, dict[str, np.ndarray]] = {"feeds": {}, "outputs": {}}
            for key, value in arrays.items():
                index, _, rest = key.partition("/")
                kind, _, name = rest.partition("/")
                if index == str(i) and kind in parts:
                    parts[kind][name] = value
            trace.runs.append(Run(str(arrays[f"{i}/graph"]), str(arrays[f"{i}/label"]), parts["feeds"], parts["outputs"]))
            if f"{i}/choice" in arrays:
                trace.choices[i] = arrays[f"{i}/choice"]
                trace.chosen_from[i] = str(arrays[f"{i}/choice_from"])
        return trace

    def tokens(self) -> np.ndarray | None:
        """torch's greedy tokens, one column per choice (None when the loop chose none)."""
        if not self.choices:
            return None
        return np.stack([np.asarray(self.choices[i]).reshape(-1) for i in sorted(self.choices)], axis=1)


class TorchSide:
    """Runs each graph's torch module and records the trace."""

    def __init__(self, run_graph: Callable[[str, Mapping[str, np.ndarray]], dict[str, np.ndarray]]) -> None:
        self._run_graph = run_graph
        self.trace = Trace()

    def run(self, graph: str, label: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._run_graph(graph, feeds)
        self.trace.runs.append(Run(graph, label, dict(feeds), outputs))
        return outputs

    def greedy(self, output: str, logits: np.ndarray) -> np.ndarray:
        chosen = argmax_tokens(logits)
        self.trace.choices[len(self.trace.runs) - 1] = chosen
        self.trace.chosen_from[len(self.trace.runs) - 1] = output
        return chosen


class LoopStructureError(Exception):
    """The program ran another graph on a backend than on torch at the same step: a bug in the
    loop's program (its control flow must follow the case and torch's tokens only)."""


class BackendSide:
    """Runs each graph's converted model and judges it against torch's trace as it goes; feeds on
    torch's greedy token after a near-tie (``StepJudge.choice`` raises where it is not one)."""

    def __init__(self, run_graph: Callable[[str, Mapping[str, np.ndarray]], dict[str, np.ndarray]], torch: Trace, judge: StepJudge) -> None:
        self._run_graph = run_graph
        self.torch = torch
        self.judge = judge
        self.runs: list[Run] = []

    def run(self, graph: str, label: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        index = len(self.runs)
        if index >= len(self.torch.runs) or self.torch.runs[index].graph != graph:
            raise LoopStructureError(f"run {index + 1}: the backend ran graph {graph!r}, torch did not")
        outputs = self._run_graph(graph, feeds)
        self.runs.append(Run(graph, label, dict(feeds), outputs))
        self.judge.step(index, self.torch.runs[index], outputs)
        return outputs

    def greedy(self, output: str, logits: np.ndarray) -> np.ndarray:
        index = len(self.runs) - 1
        reference = self.torch.choices[index]
        own = argmax_tokens(logits)
        self.judge.choice(index, self.runs[index].label, output, own, reference, self.torch.runs[index].outputs[output])
        return reference


def drive_torch(drive: Callable[[Any, Any], None], case: Any, run_graph: Callable[[str, Mapping[str, np.ndarray]], dict[str, np.ndarray]]) -> Trace:
    """torch's trace of one case."""
    side = TorchSide(run_graph)
    drive(case, side)
    return side.trace
