"""A loop that left torch: the message (the first divergent step, the case, the tokens, torch's
margin, the error by step), the diagnosis (did the state fed into that step already differ?) and
the kept case, whose step replays like a one-shot case (``python -m pytest_xframe replay``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..backends import Target
from ..check.options import CheckOptions
from ..diagnose import artifacts
from ..diagnose.failures import _function_ref
from ..errors import ParityError
from ..judge.compare import compare_output
from ..judge.mismatch import Mismatch
from ..judge.results import ParityReport
from ..judge.verdict import format_judged, in_force
from .judging import Divergence, Run, errors_by_step, top2_margin
from .program import Loop
from .sides import BackendSide, Trace


def _row_of(divergence: Divergence, chosen_from: str | None) -> int:
    """The batch row to show: the divergent token's, or the row of the worst logit."""
    if divergence.kind == "token":
        return divergence.row
    for j in divergence.judged:
        c = j.comparison
        if not c.ok and c.worst_index and len(c.shape) >= 2 and (chosen_from is None or c.name == chosen_from):
            return int(c.worst_index[0])
    return 0


def _tokens_line(trace: Trace, side: BackendSide, index: int, output: str | None, row: int, backend: str) -> list[str]:
    """Each side's greedy token at the divergent step, torch's top-2 margin there, the logit error."""
    if output is None or output not in side.runs[index].outputs:
        return []
    ref = np.asarray(trace.runs[index].outputs[output])
    got = np.asarray(side.runs[index].outputs[output])
    ref_row, got_row = ref.reshape(-1, ref.shape[-1])[row], got.reshape(-1, got.shape[-1])[row]
    error = float(np.max(np.abs(ref_row.astype(np.float64) - got_row))) if ref_row.shape == got_row.shape else float("nan")
    return [
        f"  tokens there (row {row}): torch {int(np.argmax(ref_row))}, {backend} {int(np.argmax(got_row))}; "
        f"torch's top-2 margin {top2_margin(ref_row):.3g}; {output} error in that row: max abs {error:.3g}"
    ]


def _history(trace: Trace, index: int, row: int) -> str:
    """torch's greedy tokens of ``row`` up to the divergent step."""
    chosen = [int(np.asarray(trace.choices[i]).reshape(-1)[row]) for i in sorted(trace.choices) if i < index]
    return f"  torch's tokens before it (row {row}): {chosen}" if chosen else ""


def backend_block(loop: Loop, case: Any, trace: Trace, backend: str, divergence: Divergence, side: BackendSide, target: Target) -> list[str]:
    """The lines of one backend's divergence."""
    output = next(iter(trace.chosen_from.values()), None)
    row = _row_of(divergence, output)
    if divergence.run is None:
        lines = [f"[{backend}] over the case's steps ({target.backend.precision}): {divergence.why}", f"  case: {case.describe(row)}"]
        lines += ["  " + format_judged(j).replace("\n", "\n  ") for j in divergence.judged if not j.comparison.ok]
        return lines
    run = trace.runs[divergence.run]
    label = "" if run.label.startswith("step ") else f" ({run.label})"
    lines = [
        f"[{backend}] first divergent step: {divergence.run + 1} of {len(trace.runs)}{label}; ran the {run.graph} graph: {target.label}",
        f"  case: {case.describe(row)}",
    ]
    lines += [line for line in [_history(trace, divergence.run, row)] if line]
    lines += [f"  {divergence.why}"] if divergence.kind == "token" else []
    lines += _tokens_line(trace, side, divergence.run, output, row, backend)
    lines.append(f"  max abs error by step: {errors_by_step(side.judge.errors, output if output in run.outputs else None)}")
    lines += ["  " + format_judged(j).replace("\n", "\n  ") for j in divergence.judged if not j.comparison.ok]
    return lines


def loop_mismatch(
    name: str, loop: Loop, case: Any, trace: Trace, failing: Mapping[str, tuple[Divergence, BackendSide]], targets: Mapping[str, Mapping[str, Target]]
) -> ParityError:
    """A ParityError naming each backend's first divergent step, carrying what ``finish_loop_failure`` needs."""
    what = "generation" if loop.generates else "the loop"
    lines = [f"{name}: {what} leaves torch on {', '.join(failing)}"]
    for backend, (divergence, side) in failing.items():
        graph = trace.runs[divergence.run].graph if divergence.run is not None else loop.graphs[-1].name
        lines += backend_block(loop, case, trace, backend, divergence, side, targets[backend][graph])
    error = ParityError("\n".join(lines), model=name, backend=",".join(failing))
    first = next(iter(failing.values()))[0]
    index = first.run if first.run is not None else len(trace.runs) - 1
    error.loop = {"case": case, "trace": trace, "failing": dict(failing), "run": trace.runs[index]}  # type: ignore[attr-defined]
    return error


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.shape == b.shape and a.size else (0.0 if a.shape == b.shape else float("inf"))


def _state_diagnosis(trace: Trace, side: BackendSide, index: int) -> str:
    """Whether the state fed into the divergent step already differed (a drift carried in) or the
    step itself went wrong on the same state."""
    ref, got = trace.runs[index], side.runs[index]
    carried = {n: _max_difference(v, got.feeds[n]) for n, v in ref.feeds.items() if n in got.feeds and np.asarray(v).dtype.kind == "f"}
    produced = {n: _max_difference(v, got.outputs[n]) for n, v in ref.outputs.items() if n in got.outputs}
    worst_out = max(produced.items(), key=lambda kv: kv[1], default=None)
    out_text = f"; its worst output {worst_out[0]!r} is off by {worst_out[1]:.3g}" if worst_out is not None else ""
    worst = max(carried.items(), key=lambda kv: kv[1], default=None)
    if worst is None or worst[1] == 0.0:
        return "diagnosis: the step got exactly torch's inputs: the step itself diverges" + out_text
    return f"diagnosis: the state fed into that step differed from torch's by at most {worst[1]:.3g} ({worst[0]!r}){out_text}"


def finish_loop_failure(failure: ParityError, report: ParityReport, targets: Mapping[str, Mapping[str, Target]], options: CheckOptions, root: Path) -> NoReturn:
    """Mark, diagnose and keep each failing backend's case, then re-raise with the replay hint."""
    __tracebackhide__ = True
    info = failure.loop  # type: ignore[attr-defined]
    trace: Trace = info["trace"]
    hints = []
    for backend, (divergence, side) in info["failing"].items():
        index = divergence.run if divergence.run is not None else len(side.runs) - 1
        result = report.backends[backend]
        ref, got = trace.runs[index], side.runs[index]
        result.mismatch = Mismatch(
            backend, ref.feeds, ref.outputs, got.outputs, tuple(divergence.judged),
            summary=f"step {index + 1}: {divergence.why}" if divergence.run is not None else divergence.why,
        )
        for j in divergence.judged:
            if not j.comparison.ok:
                result.worst[j.comparison.name] = j.comparison
        result.diagnosis = _state_diagnosis(trace, side, index)
        target = targets[backend][trace.runs[index].graph]
        directory = artifacts.case_dir(root, report.test_id, backend)
        kept = _keep(directory, target, (ref, got), info["case"], divergence, side.judge.thresholds, report, options)
        hints.append(f"[{backend}] {result.diagnosis}")
        if kept is None:
            hints.append(f"[{backend}] artifacts: not kept ({directory} could not be written; see the warning)")
            continue
        result.artifacts = str(directory)
        shown = artifacts.shown(directory)
        replay = f"python -m pytest_xframe replay {shown} (step {index + 1} alone, on torch's state)" if target.backend.load_case else "rerun the test"
        hints.append(f"[{backend}] artifacts: {shown}\n  replay: {replay}; the whole case reruns first when the test reruns")
    failure.report_text += "\n" + "\n".join(hints)
    raise failure


def _keep(
    directory: Path, target: Target, runs: tuple[Run, Run], case: Any, divergence: Divergence, thresholds: Any, report: ParityReport,
    options: CheckOptions,
) -> Path | None:
    """The divergent step as a one-shot case (its graph, torch's feeds and outputs there, the
    backend's outputs on its own state, every output's policy) plus the whole drawn case
    (``loop_case.npz``)."""
    ref, got = runs
    policies = {n: thresholds(n, str(np.asarray(v).dtype)) for n, v in ref.outputs.items()}
    on_step = {n: in_force(policies[n], np.asarray(v)) for n, v in ref.outputs.items()}  # a scaling atol grown to this step's output
    comparisons = [
        compare_output(n, v, got.outputs[n], on_step[n].atol, on_step[n].rtol, options.equal_nan) for n, v in ref.outputs.items() if n in got.outputs
    ]
    kept = artifacts.keep(
        artifacts.save_case, directory,
        case={
            "test_id": report.test_id, "model": report.model, "backend": target.name, "onnx": target.artifact.label,
            "input_names": list(target.artifact.input_names), "output_names": list(target.artifact.output_names),
            "options": {k: v for k, v in vars(options).items() if k != "calibration"},
            "comparisons": [c.to_dict() for c in comparisons], "diagnosis": report.backends[target.name].diagnosis,
            "policies": {n: th.to_dict() for n, th in policies.items()},
            "load_case": _function_ref(target.backend.load_case) if target.backend.load_case is not None else None,
            "loop": {"step": ref.label, "graph": ref.graph, "divergence": divergence.kind, "why": divergence.why, "case": repr(case)},
        },
        inputs=dict(ref.feeds), reference=dict(ref.outputs), backend_outputs=dict(got.outputs),
        onnx_path=target.artifact.path, converted_path=target.prepared.converted_path_for(ref.feeds), external_data=target.artifact.files[1:],
    )
    if kept is not None:
        np.savez(kept / "loop_case.npz", **case.arrays())
    return kept
