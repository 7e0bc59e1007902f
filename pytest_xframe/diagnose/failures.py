"""What happens after a check fails: the mismatch message, the diagnosis (which step broke, the
first divergent ONNX node, the backend's own layer report), the kept case (inputs, outputs,
models, error plots) with its replay line, and the kept export or conversion error."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from ..errors import ParityError, XframeError, describe_exception, first_line
from ..export.to_onnx import OnnxArtifact
from ..formatting import describe_array
from ..judge.compare import OutputComparison
from ..judge.results import BackendResult, ParityReport
from ..judge.verdict import Judged, format_aggregate, format_judged
from . import artifacts

if TYPE_CHECKING:
    from ..backends import Target
    from ..check.subject import Subject
    from ..plugin.options import CheckOptions


def for_backend(exc: XframeError, backend: str, artifact: OnnxArtifact | None) -> XframeError:
    """A copy of a session-memoised error that names this backend and the ONNX model it had."""
    exc = copy.copy(exc)
    exc.backend = backend
    exc.onnx_path = None if artifact is None else artifact.path  # type: ignore[attr-defined]
    exc.external_data = () if artifact is None else artifact.files[1:]  # type: ignore[attr-defined]
    return exc


def keep_error(exc: XframeError, root: Path, test_id: str) -> None:
    """An export or conversion failure keeps the ONNX model and the full traceback for later."""
    if not exc.details or not exc.backend:
        return
    directory = artifacts.case_dir(root, test_id, exc.backend)
    if artifacts.keep(
        artifacts.save_error, directory, text=f"{exc}\n\n{exc.details}", onnx_path=getattr(exc, "onnx_path", None),
        external_data=getattr(exc, "external_data", ()),
    ):
        exc.kept = artifacts.shown(directory)


def mismatch_error(
    name: str, feeds: Mapping[str, np.ndarray], reference: dict, outputs: dict, failing: dict[str, list[Judged]], targets: list[Target]
) -> ParityError:
    """A ParityError naming every failing output with its figures, carrying what the final report and the artifacts need."""
    lines = [f"{name}: outputs differ from torch on {', '.join(failing)}", f"input: {feeds!r}"]
    for backend_name, judged in failing.items():
        t = next(t for t in targets if t.name == backend_name)
        lines.append(f"[{backend_name}] ran {t.label} ({t.backend.precision})")
        lines.extend("  " + format_judged(j).replace("\n", "\n  ") for j in judged if not j.comparison.ok)
    error = ParityError("\n".join(lines), model=name, backend=",".join(failing))
    error.feeds, error.reference = feeds, reference  # type: ignore[attr-defined]
    error.comparisons = {b: [j.comparison for j in judged] for b, judged in failing.items()}  # type: ignore[attr-defined]
    error.outputs = {b: outputs[b] for b in failing}  # type: ignore[attr-defined]
    # what failed, per backend and output: the policy's thresholds, for the summary's message
    error.reasons = {b: {j.comparison.name: j.failed for j in judged if j.failed} for b, judged in failing.items()}  # type: ignore[attr-defined]
    return error


def diagnose(t: Target, failure: Any, comparisons: list[OutputComparison], subject: Subject, options: CheckOptions, workdir: Path) -> str:
    """Which step broke and where it first shows, then the backend's own layer report if it has one.

    Only runs on the final, minimal failing input; a diagnosis that itself fails says so in a
    line and never hides the mismatch.
    """
    text = _locate(t, failure, comparisons, subject, options, workdir)
    extra = _layer_report(t, failure, workdir)
    return text if not extra else f"{text}\n{extra}"


def _locate(t: Target, failure: Any, comparisons: list[OutputComparison], subject: Subject, options: CheckOptions, workdir: Path) -> str:
    """The step (export, conversion, runtime) and the first ONNX node where the error shows."""
    from ..export.onnx_graph import run_onnx
    from .divergence import attribute_step, locate_conversion_divergence, locate_export_divergence

    if t.backend.source == "torch":
        return f"diagnosis: {t.name} converts the torch module directly, so its conversion introduced the error (no ONNX node on its route to name)"
    worst = max((c for c in comparisons if not c.ok), key=lambda c: c.tolerance_ratio)
    atol, rtol = worst.atol, worst.rtol  # the policy's, for this output
    onnx_path = str(t.artifact.path)
    try:
        ort_out = run_onnx(onnx_path, failure.feeds)
        step = attribute_step(failure.reference, ort_out, failure.outputs[t.name], (atol, rtol), equal_nan=options.equal_nan)
        located = None
        if step == "export":
            located = locate_export_divergence(subject.model, onnx_path, failure.feeds, atol, rtol, subject.positional)
        elif step == "conversion" and t.backend.run_intermediates is not None:
            run = t.backend.run_intermediates
            located = locate_conversion_divergence(
                onnx_path, failure.feeds, atol, rtol, lambda model, feeds: run(model, feeds, workdir, subject.name), ("onnxruntime", t.name)
            )
    except Exception as exc:  # noqa: BLE001 - a diagnosis is a bonus: report why it failed, keep the mismatch
        return f"diagnosis: could not locate the divergence ({type(exc).__name__}: {first_line(str(exc))[:200]})"
    lines = [f"diagnosis: the {step} step introduced the error" if step != "unknown" else "diagnosis: the step could not be pinned down"]
    if located is not None:
        lines.append(located.format())
    return "\n".join(lines)


def _layer_report(t: Target, failure: Any, workdir: Path) -> str | None:
    if t.backend.layer_report is None:
        return None
    try:
        return t.backend.layer_report(t.prepared, t.artifact, failure.feeds, workdir)
    except Exception as exc:  # noqa: BLE001 - a bonus too: say why it failed, keep the mismatch
        return f"layer report: could not be made ({describe_exception(exc, 200)})"


def finish_failure(
    failure: Any, report: ParityReport, targets: list[Target], subject: Subject, options: CheckOptions, root: Path, workdir: Path
) -> NoReturn:
    """Diagnose and save the minimal failing case per failing backend, then re-raise with the replay hint."""
    __tracebackhide__ = True
    hints = []
    for backend_name, comparisons in failure.comparisons.items():
        t = next(t for t in targets if t.name == backend_name)
        result = report.backends[backend_name]
        _mark_failed(result, comparisons, getattr(failure, "reasons", {}).get(backend_name, {}))
        result.diagnosis = diagnose(t, failure, comparisons, subject, options, workdir)
        if result.calibration is not None:
            result.diagnosis += "\n" + calibration_line(result.calibration)
        directory = artifacts.case_dir(root, report.test_id, backend_name)
        if _save_case(directory, t, failure, comparisons, report, options, result.diagnosis) is None:
            # the mismatch stays the failure; a StorageWarning says why nothing was kept
            hints.append(f"[{t.name}] " + result.diagnosis.replace("\n", "\n  "))
            hints.append(f"[{t.name}] artifacts: not kept ({directory} could not be written; see the warning)")
            continue
        result.artifacts = str(directory)
        hints.extend(f"[{backend_name}] " + format_aggregate(n, a) for n, a in result.metrics.items() if a.examples)
        hints.extend(_hints(directory, t, failure, comparisons, result.diagnosis))
    failure.report_text += "\n" + "\n".join(hints)
    raise failure


def aggregate_failure(report: ParityReport) -> ParityError | None:
    """Thresholds judged over all examples once they ran (top-k agreement): a ParityError naming
    each failing figure, or None."""
    lines = []
    for backend_name, result in report.backends.items():
        failed = {n: why for n, why in ((n, a.topk_failure()) for n, a in result.metrics.items()) if why}
        if failed:
            result.verdict = "failed"
            result.message = "; ".join(f"{n}: {why}" for n, why in failed.items())
            lines.append(f"[{backend_name}] ({result.precision}) over {result.examples} example(s):")
            lines.extend(f"  output {n!r}: fails its policy: {why}\n    " + format_aggregate(n, result.metrics[n]) for n, why in failed.items())
    if not lines:
        return None
    failing = ",".join(b for b, r in report.backends.items() if r.verdict == "failed")
    return ParityError("\n".join([f"{report.model}: outputs differ from torch over the examples drawn", *lines]), model=report.model, backend=failing)


def calibration_line(described: Mapping[str, Any]) -> str:
    """Where a quantized target's calibration samples came from, for the failure message."""
    if described["source"] == "data":
        return f"calibration: {described['data']} (data=)"
    where = f"drawn from the input spec (calibration_seed={described['seed']})" if described["source"] == "spec" else "given by calibration="
    return f"calibration: {described['samples']} sample(s) {where}"


def _mark_failed(result: BackendResult, comparisons: list[OutputComparison], reasons: Mapping[str, list[str]]) -> None:
    result.verdict = "failed"
    for c in comparisons:  # the minimal failing example's figures are the ones to report
        if not c.ok:
            result.worst[c.name] = c
    result.message = "; ".join(
        f"{c.name}: {c.problem or ', '.join(reasons.get(c.name, ())) or f'max abs {c.max_abs:.3g}'}" for c in comparisons if not c.ok
    )


def _function_ref(function: Any) -> dict[str, str | None]:
    """Where replay finds a function again: its module, name and file (a conftest's module is
    not importable by name outside pytest)."""
    import sys

    module = sys.modules.get(function.__module__)
    return {"module": function.__module__, "qualname": function.__qualname__, "file": getattr(module, "__file__", None)}


def _save_case(
    directory: Path, t: Target, failure: Any, comparisons: list[OutputComparison], report: ParityReport, options: CheckOptions, diagnosis: str
) -> Path | None:
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
            "inputs": {k: describe_array(v) for k, v in failure.feeds.items()},
            "comparisons": [c.to_dict() for c in comparisons],
            "diagnosis": diagnosis,
            # the policy each output was judged by, so replay judges the same way
            "policies": {name: a.thresholds.to_dict() for name, a in report.backends[t.name].metrics.items()},
            "load_case": _function_ref(t.backend.load_case) if t.backend.load_case is not None else None,
        },
        inputs=failure.feeds,
        reference=failure.reference,
        backend_outputs=failure.outputs[t.name],
        onnx_path=t.artifact.path,
        converted_path=t.prepared.converted_path_for(failure.feeds),
        external_data=t.artifact.files[1:],
    )


def _hints(directory: Path, t: Target, failure: Any, comparisons: list[OutputComparison], diagnosis: str) -> list[str]:
    """The lines added under the mismatch: error plots, the diagnosis, where the case is and how to replay it."""
    from .plots import save_error_plot

    hints = []
    for c in comparisons:
        if not c.ok and not c.problem:
            plot = save_error_plot(directory, c.name, failure.reference[c.name], failure.outputs[t.name][c.name], c.atol, c.rtol)
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
