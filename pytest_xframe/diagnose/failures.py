"""What happens after a check fails: the mismatch message, the diagnosis (which step broke, the
first divergent ONNX node, the backend's own layer report), the kept case (inputs, outputs,
models, error plots) with its replay line, and the kept export or conversion error."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from ..errors import ParityError, XframeError, describe_exception, first_line
from ..export.to_onnx import OnnxArtifact
from ..formatting import describe_array
from ..judge.results import ParityReport
from ..judge.verdict import format_aggregate, format_judged
from . import artifacts

if TYPE_CHECKING:
    from ..backends import Target
    from ..check.options import CheckOptions
    from ..check.subject import Subject
    from ..judge.mismatch import Mismatch


def for_backend(exc: XframeError, backend: str, artifact: OnnxArtifact | None) -> XframeError:
    """A copy of a session-memoised error that names this backend and the ONNX model it had."""
    exc = copy.copy(exc)
    exc.backend = backend
    exc.onnx_path = None if artifact is None else artifact.path
    exc.external_data = () if artifact is None else artifact.files[1:]
    return exc


def keep_error(exc: XframeError, root: Path, test_id: str) -> None:
    """An export or conversion failure keeps the ONNX model and the full traceback for later."""
    if not exc.details or not exc.backend:
        return
    directory = artifacts.case_dir(root, test_id, exc.backend)
    if artifacts.keep(
        artifacts.save_error, directory, text=f"{exc}\n\n{exc.details}", onnx_path=exc.onnx_path, external_data=exc.external_data,
    ):
        exc.kept = artifacts.shown(directory)


def mismatch_error(name: str, mismatches: list[Mismatch], targets: list[Target]) -> ParityError:
    """A ParityError naming every failing output with its figures, carrying the mismatches."""
    first = mismatches[0]
    lines = [f"{name}: outputs differ from torch on {', '.join(m.backend for m in mismatches)}", f"input: {first.feeds!r}"]
    for m in mismatches:
        t = _target(targets, m.backend)
        lines.append(f"[{m.backend}] ran {t.label} ({t.backend.precision})")
        lines.extend("  " + format_judged(j).replace("\n", "\n  ") for j in m.failing)
    return ParityError("\n".join(lines), model=name, backend=",".join(m.backend for m in mismatches), mismatches=mismatches)


def _target(targets: list[Target], backend: str) -> Target:
    return next(t for t in targets if t.name == backend)


def diagnose(t: Target, mismatch: Mismatch, subject: Subject, equal_nan: bool, workdir: Path) -> tuple[str | None, str]:
    """Which step broke (None when not pinned down) and where it first shows, then the backend's
    own layer report if it has one, as text.

    Only runs on the final, minimal failing input; a diagnosis that itself fails says so in a
    line and never hides the mismatch.
    """
    step, text = _locate(t, mismatch, subject, equal_nan, workdir)
    extra = _layer_report(t, mismatch, workdir)
    return step, (text if not extra else f"{text}\n{extra}")


def _locate(t: Target, mismatch: Mismatch, subject: Subject, equal_nan: bool, workdir: Path) -> tuple[str | None, str]:
    """The step (export, conversion, runtime) and the first ONNX node where the error shows."""
    from ..export.onnx_graph import run_onnx
    from .divergence import attribute_step, locate_conversion_divergence, locate_export_divergence

    if t.backend.source == "torch":
        return "conversion", (
            f"diagnosis: {t.name} converts the torch module directly, so its conversion introduced the error (no ONNX node on its route to name)"
        )
    worst = max((j.comparison for j in mismatch.failing), key=lambda c: c.tolerance_ratio)
    atol, rtol = worst.atol, worst.rtol  # the policy's, for this output
    onnx_path = str(t.artifact.path)
    try:
        ort_out = run_onnx(onnx_path, mismatch.feeds)
        step = attribute_step(mismatch.reference, ort_out, mismatch.outputs, (atol, rtol), equal_nan=equal_nan)
        located = None
        if step == "export":
            located = locate_export_divergence(subject.model, onnx_path, mismatch.feeds, atol, rtol, subject.positional)
        elif step == "conversion" and t.backend.run_intermediates is not None:
            run = t.backend.run_intermediates
            located = locate_conversion_divergence(
                onnx_path, mismatch.feeds, atol, rtol, lambda model, feeds: run(model, feeds, workdir, subject.name), ("onnxruntime", t.name)
            )
    except Exception as exc:  # noqa: BLE001 - a diagnosis is a bonus: report why it failed, keep the mismatch
        return None, f"diagnosis: could not locate the divergence ({type(exc).__name__}: {first_line(str(exc))[:200]})"
    lines = [f"diagnosis: the {step} step introduced the error" if step != "unknown" else "diagnosis: the step could not be pinned down"]
    if located is not None:
        lines.append(located.format())
    return (step if step != "unknown" else None), "\n".join(lines)


def _layer_report(t: Target, mismatch: Mismatch, workdir: Path) -> str | None:
    if t.backend.layer_report is None:
        return None
    try:
        return t.backend.layer_report(t.prepared, t.artifact, mismatch.feeds, workdir)
    except Exception as exc:  # noqa: BLE001 - a bonus too: say why it failed, keep the mismatch
        return f"layer report: could not be made ({describe_exception(exc, 200)})"


class FailingRun(Protocol):
    """What diagnosing a failure reads of the check that failed (``check.run.CheckRun`` is one)."""

    report: ParityReport
    targets: list[Target]
    subject: Subject | None
    options: CheckOptions
    artifacts_root: Path

    @property
    def workdir(self) -> Path: ...


def finish_failure(failure: ParityError, run: FailingRun) -> NoReturn:
    """Record, diagnose and save the minimal failing case per failing backend, then re-raise with
    the diagnosis, the figures over the examples and the replay hint."""
    __tracebackhide__ = True
    report, hints = run.report, []
    for m in failure.mismatches:
        t, result = _target(run.targets, m.backend), report.backends[m.backend]
        step, result.diagnosis = diagnose(t, m, run.subject, run.options.equal_nan, run.workdir)
        result.mismatch = replace(m, step=step)
        for c in m.comparisons:  # the minimal failing example's figures are the ones to report
            if not c.ok:
                result.worst[c.name] = c
        if result.calibration is not None:
            result.diagnosis += "\n" + calibration_line(result.calibration)
        directory = artifacts.case_dir(run.artifacts_root, report.test_id, m.backend)
        if _save_case(directory, t, m, report, run.options, result.diagnosis) is None:
            # the mismatch stays the failure; a StorageWarning says why nothing was kept
            hints.append(f"[{t.name}] " + result.diagnosis.replace("\n", "\n  "))
            hints.append(f"[{t.name}] artifacts: not kept ({directory} could not be written; see the warning)")
            continue
        result.artifacts = str(directory)
        hints.extend(f"[{m.backend}] " + format_aggregate(n, a) for n, a in result.metrics.items() if a.examples)
        hints.extend(_hints(directory, t, m, result.diagnosis))
    failure.report_text += "\n" + "\n".join(hints)
    raise failure


def aggregate_failure(report: ParityReport) -> ParityError | None:
    """Thresholds judged over all examples once they ran (top-k agreement, each backend's
    ``failed_over_examples``): a ParityError naming each failing figure, or None."""
    lines = []
    for backend_name, result in report.backends.items():
        failed = result.failed_over_examples
        if failed:
            lines.append(f"[{backend_name}] ({result.precision}) over {result.examples} example(s):")
            lines.extend(f"  output {n!r}: fails its policy: {why}\n    " + format_aggregate(n, result.metrics[n]) for n, why in failed.items())
    if not lines:
        return None
    failing = ",".join(b for b, r in report.backends.items() if r.failed_over_examples)
    return ParityError("\n".join([f"{report.model}: outputs differ from torch over the examples drawn", *lines]), model=report.model, backend=failing)


def calibration_line(described: Mapping[str, Any]) -> str:
    """Where a quantized target's calibration samples came from, for the failure message."""
    if described["source"] == "data":
        return f"calibration: {described['data']} (data=)"
    where = f"drawn from the input spec (calibration_seed={described['seed']})" if described["source"] == "spec" else "given by calibration="
    return f"calibration: {described['samples']} sample(s) {where}"


def _function_ref(function: Any) -> dict[str, str | None]:
    """Where replay finds a function again: its module, name and file (a conftest's module is
    not importable by name outside pytest)."""
    import sys

    module = sys.modules.get(function.__module__)
    return {"module": function.__module__, "qualname": function.__qualname__, "file": getattr(module, "__file__", None)}


def _save_case(directory: Path, t: Target, m: Mismatch, report: ParityReport, options: CheckOptions, diagnosis: str) -> Path | None:
    """The case directory, or None when it could not be written (a StorageWarning says why)."""
    return artifacts.keep(
        artifacts.save_case,
        directory,
        case={
            "test_id": report.test_id,
            "model": report.model,
            "backend": t.name,
            "onnx": report.backends[t.name].onnx,
            "input_names": list(t.artifact.input_names),
            "output_names": list(t.artifact.output_names),
            # user calibration samples and data are arrays: the case says where they came from instead
            "options": {k: v for k, v in vars(options).items() if k != "calibration" and (k != "data" or isinstance(v, str))},
            "data": report.data,
            "calibration": report.backends[t.name].calibration,
            "inputs": {k: describe_array(v) for k, v in m.feeds.items()},
            "comparisons": [c.to_dict() for c in m.comparisons],
            "diagnosis": diagnosis,
            # the policy each output was judged by, so replay judges the same way
            "policies": {name: a.thresholds.to_dict() for name, a in report.backends[t.name].metrics.items()},
            "load_case": _function_ref(t.backend.load_case) if t.backend.load_case is not None else None,
        },
        inputs=m.feeds,
        reference=m.reference,
        backend_outputs=m.outputs,
        onnx_path=t.artifact.path,
        converted_path=t.prepared.converted_path_for(m.feeds),
        external_data=t.artifact.files[1:],
    )


def _hints(directory: Path, t: Target, m: Mismatch, diagnosis: str) -> list[str]:
    """The lines added under the mismatch: error plots, the diagnosis, where the case is and how to replay it."""
    from .plots import save_error_plot

    hints = []
    for c in m.comparisons:
        if not c.ok and not c.problem:
            plot = save_error_plot(directory, c.name, m.reference[c.name], m.outputs[c.name], c.atol, c.rtol)
            if plot is not None:
                hints.append(f"[{t.name}] error plot of {c.name!r}: {artifacts.shown(plot)}")
    hints.append(f"[{t.name}] " + (diagnosis.replace("\n", "\n  ") if diagnosis.startswith("diagnosis:") else diagnosis))
    shown = artifacts.shown(directory)
    if t.backend.load_case is not None:  # the ONNX model and its conversion are kept
        hints.append(f"[{t.name}] artifacts: {shown}\n  replay: python -m pytest_xframe replay {shown}")
    else:
        why = "converts the torch module, which is not kept" if t.backend.source == "torch" else "cannot load a saved case (no load_case)"
        hints.append(f"[{t.name}] artifacts: {shown}\n  replay: rerun the test ({t.name} {why})")
    return hints
