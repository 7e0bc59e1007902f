"""What happens after a check fails: the mismatch message, the diagnosis (which step broke, the
first divergent ONNX node, the backend's own layer report), the kept case (inputs, outputs,
models, error plots) with its replay line, and the kept export or conversion error."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from ..errors import USER_CODE_FAILURES, ParityError, XframeError, describe_exception, first_line, strip_ansi
from ..export.to_onnx import OnnxArtifact
from ..formatting import describe_array
from ..judge.noise import Noise, accumulation_noise, describe_noise
from ..judge.results import ParityReport
from ..judge.verdict import format_aggregate, format_judged
from ..quiet import captured
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


@dataclass(frozen=True)
class RouteFailure:
    """One export route of a backend that did not get to run: its exporter and requested opset,
    the error, and the opset it exported at when the export worked (the conversion failed)."""

    exporter: str
    opset: int | None
    error: XframeError
    exported: int | None = None

    @property
    def stage(self) -> int:
        """How far the route got: 0 failed to export, 1 exported but failed to convert."""
        return 0 if self.exported is None else 1

    def line(self, decisive: bool) -> str:
        """The route, how far it got and its own cause, on one line."""
        route = f"{self.exporter}, " + (f"opset {self.opset}" if self.opset else "its default opset")
        e = self.error
        what = "export failed" if self.exported is None else f"exported at opset {self.exported}, then: {e.summary}"
        cause = first_line(e.cause or (e.summary if self.exported is None else ""), 240)
        return f"{route}: {what}" + (f": {cause}" if cause else "") + ("  <- the failure above" if decisive else "")


def route_failure(failures: list[RouteFailure]) -> XframeError:
    """The error a backend raises when no route of its export plan got to run.

    The headline is the failure that decided the result: the route that got furthest (a conversion
    failure beats an export failure: that export worked), the earliest among equals. Every route
    tried is listed under it with its own cause; its advice drops the exports already tried; its
    details (the artifacts' ``error.txt``, ``-v``) hold every route's full text."""
    decisive = max(failures, key=lambda f: f.stage)  # max keeps the first of equals
    error = copy.copy(decisive.error)
    tried = [(f.exporter, f.opset) for f in failures]
    error.routes = tuple(r for r in error.routes if not _tried(r, tried))
    if len(failures) > 1:
        error.tried = [f.line(f is decisive) for f in failures]
        others = "".join(f"\n\n--- route {f.exporter}, opset {f.opset or 'default'} ---\n{f.error}\n{f.error.details or ''}"
                         for f in failures if f is not decisive)
        error.details = (error.details or "") + others
    return error


def _tried(route: tuple[str, int | None], tried: list[tuple[str, int | None]]) -> bool:
    """Whether a suggested export was tried: the same exporter at that opset (or at any, for a
    suggestion that leaves the opset to the exporter)."""
    exporter, opset = route
    return any(e == exporter and (opset is None or o == opset) for e, o in tried)


def keep_error(exc: XframeError, root: Path, test_id: str) -> None:
    """An export or conversion failure keeps the ONNX model and the full traceback for later."""
    if not exc.details or not exc.backend:
        return
    directory = artifacts.case_dir(root, test_id, exc.backend)
    if artifacts.keep(
        artifacts.save_error, directory, text=strip_ansi(f"{exc}\n\n{exc.details}"), onnx_path=exc.onnx_path,
        external_data=exc.external_data, inputs=exc.inputs, converted_path=exc.converted_path,
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
    with captured():  # the frameworks run again here: their logs are not the user's report
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
    noise = _accumulation_noise(t, mismatch)
    if noise:  # rounding in another order: no step to blame, no node to search for
        return None, describe_noise(noise, _node_count(t.artifact.path))
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
    except USER_CODE_FAILURES as exc:  # a diagnosis is a bonus: report why it failed, keep the mismatch
        return None, f"diagnosis: could not locate the divergence ({type(exc).__name__}: {first_line(str(exc))[:200]})"
    lines = [f"diagnosis: the {step} step introduced the error" if step != "unknown" else "diagnosis: the step could not be pinned down"]
    if located is not None:
        lines.append(located.format())
    return (step if step != "unknown" else None), "\n".join(lines)


def _accumulation_noise(t: Target, mismatch: Mismatch) -> list[Noise]:
    """Every failing output as fp32 accumulation noise, or [] when any one is more than noise
    (or the target does not compute in fp32)."""
    if t.backend.precision != "fp32":
        return []
    found = []
    for j in mismatch.failing:
        c = j.comparison
        noise = accumulation_noise(c, mismatch.reference[c.name], mismatch.outputs.get(c.name))
        if noise is None:
            return []
        found.append(noise)
    return found


def _node_count(path: Path) -> int | None:
    """Nodes of the ONNX model's main graph (its depth, roughly), None when it cannot be read."""
    try:
        import onnx

        return len(onnx.load(str(path), load_external_data=False).graph.node)
    except Exception:  # noqa: BLE001 - only improves the diagnosis
        return None


def _layer_report(t: Target, mismatch: Mismatch, workdir: Path) -> str | None:
    if t.backend.layer_report is None:
        return None
    try:
        return t.backend.layer_report(t.prepared, t.artifact, mismatch.feeds, workdir)
    except USER_CODE_FAILURES as exc:  # a bonus too: say why it failed, keep the mismatch
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
