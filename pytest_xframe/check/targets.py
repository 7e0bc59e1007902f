"""Each backend of a check made ready to run: exported once (per exporter and opset of its plan,
falling back to the next entry), converted and loaded once, through the session's memo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import Backend, Prepared, Target, TorchSource
from ..diagnose.failures import RouteFailure, for_backend, route_failure
from ..errors import BackendUnavailable, ConversionError, ExportError, TooLargeError
from ..export.cache import export_stack
from ..export.to_onnx import OnnxArtifact, export
from ..identity import keyed_entry, text_digest
from .preflight import scripted_plan

if TYPE_CHECKING:
    from ..inputs.calibration import Calibration
    from ..inputs.data.dataset import DataSet
    from ..judge.results import BackendResult
    from .memo import SessionMemo
    from .options import CheckOptions
    from .subject import Subject


def export_plan(backend: Backend, options: CheckOptions, model: Any, name: str) -> tuple[tuple[str, int | None], ...]:
    """The (exporter, opset) routes to try in turn; a TorchScript module keeps its TorchScript ones."""
    if options.exporter is not None:
        plan: tuple[tuple[str, int | None], ...] = ((options.exporter, options.opset),)
    elif options.opset is not None:
        plan = tuple(dict.fromkeys((exp, options.opset) for exp, _ in backend.exports))
    else:
        plan = backend.exports
    return scripted_plan(plan, backend, model, name)


def _exporter(subject: Subject, exporter: str, opset: int | None) -> Callable[[Path], OnnxArtifact]:
    """The export of the subject by ``exporter`` at ``opset`` into a given directory."""
    return lambda out_dir: export(
        subject.model, subject.slots, subject.output_names, exporter=exporter, opset=opset, out_dir=out_dir,
        model_name=subject.name, positional=subject.positional, example=subject.example,
    )


def _keyed(subject: Subject, export_key: str | None, exporter: str, opset: int | None) -> dict[str, str] | None:
    """The cross-run cache key of this export, when the user vouched for the model's code (``export_key``)."""
    if export_key is None:
        return None
    import json

    described = {"exporter": exporter, "opset": str(opset), "inputs": text_digest(subject.slots_key),
                 "output_names": json.dumps(subject.output_names), "positional": str(subject.positional), **export_stack()}
    return keyed_entry(export_key, subject.weights, subject.model, described)


def prepare_target(
    memo: SessionMemo, backend: Backend, subject: Subject, options: CheckOptions, result: BackendResult, export_key: str | None = None,
    data: DataSet | None = None,
) -> Target:
    """The backend's runner on the first export in its plan that exports and converts; a calibrated
    backend calibrates on ``data=`` where it is given."""
    missing = backend.missing()
    if missing:
        raise BackendUnavailable(f"backend {backend.name} is not installed", model=subject.name, backend=backend.name, cause=missing)
    errors: list[RouteFailure] = []
    for exporter, opset in export_plan(backend, options, subject.model, subject.name):
        try:
            key = (subject.fingerprint, subject.slots_key, exporter, opset)
            artifact, fresh_export = memo.export(key, _exporter(subject, exporter, opset), _keyed(subject, export_key, exporter, opset))
        except ExportError as exc:
            errors.append(RouteFailure(exporter, opset, for_backend(exc, backend.name, None)))
            continue
        calibration = _calibration(subject, options, data) if backend.calibrated else None
        try:
            prepared, fresh_prepare, import_seconds = memo.prepare(
                backend, artifact, subject.name, TorchSource(subject.model, subject.slots, subject.positional),
                calibration, options.int8_io and backend.calibrated,
            )
        except ConversionError as exc:
            errors.append(RouteFailure(exporter, opset, for_backend(exc, backend.name, artifact), exported=artifact.opset))
            if isinstance(exc, TooLargeError):  # every exporter writes the same weights
                break
            continue
        _note_preparation(result, artifact, prepared, fresh_export, fresh_prepare, import_seconds, errors)
        result.calibration = calibration.describe() if calibration is not None and prepared.used_calibration else None
        result.export_cache_hit = memo.from_cache(key)
        return Target(backend, artifact, prepared)
    raise route_failure(errors)


def _calibration(subject: Subject, options: CheckOptions, data: DataSet | None = None) -> Calibration:
    """The samples a calibrated (quantized) backend quantizes with: the user's, those of ``data=``,
    or drawn from the spec."""
    from ..inputs import calibration

    if options.calibration is not None:
        return calibration.from_user(options.calibration, subject.slots, subject.name)
    if data is not None:
        return data.calibration(options.calibration_samples)
    return calibration.from_spec(subject.slots, options.calibration_samples, options.calibration_seed)


def _note_preparation(
    result: BackendResult, artifact: OnnxArtifact, prepared: Prepared, fresh_export: bool, fresh_prepare: bool, import_seconds: float,
    errors: list[RouteFailure],
) -> None:
    """Timings count only work done now; earlier failed routes are named in the message, each with its cause."""
    result.onnx = prepared.route or artifact.label
    result.export_seconds = artifact.seconds if fresh_export else 0.0
    result.import_seconds = import_seconds
    result.convert_seconds = prepared.convert_seconds if fresh_prepare else 0.0
    result.load_seconds = prepared.load_seconds if fresh_prepare else 0.0
    result.cache_hit = prepared.cache_hit or not fresh_prepare
    if errors:
        result.message = "fell back to " + result.onnx + " after: " + "; ".join(f.line(False) for f in errors)
