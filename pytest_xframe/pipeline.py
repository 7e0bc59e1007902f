"""One parity check: export once, prepare each backend once, then let hypothesis draw inputs.

Every drawn input runs through torch (the reference) and each backend; outputs are compared one
by one. Hypothesis shrinks a failing input; the final, minimal failure is saved for replay.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import artifacts, backends
from .backends import BuildContext, Prepared, TorchSource
from .cache import ArtifactCache
from .compare import OutputComparison
from .convert import import_converter
from .errors import BackendUnavailable, ConversionError, ExportError, ParityError, SpecError, VacuousCheckWarning, XframeError, first_line
from .export import OnnxArtifact, example_feeds, export
from .imports import import_hypothesis
from .judge import Judged, MetricAggregate, VacuityTracker, format_aggregate, format_judged, judge_example, policy_for
from .outputs import torch_outputs
from .policy import check_names
from .settings import CheckOptions
from .spec import InputSlot, bind_inputs, forward_parameters
from .strategies import Feeds, describe_array, feeds_strategy, shared_dims


@dataclass
class BackendResult:
    """Figures for one backend within one check; the worst comparison seen per output."""

    backend: str
    onnx: str = ""
    examples: int = 0
    worst: dict[str, OutputComparison] = field(default_factory=dict)
    export_seconds: float = 0.0
    #: importing the backend's framework (TensorFlow: seconds), kept apart from convert and load
    import_seconds: float = 0.0
    convert_seconds: float = 0.0
    load_seconds: float = 0.0
    run_seconds: float = 0.0
    cache_hit: bool = False
    verdict: str = "pending"  # passed / failed / error / skipped
    message: str = ""
    artifacts: str | None = None
    #: for a failure: the step that broke and the first divergent ONNX node, as text
    diagnosis: str | None = None
    #: what the target computes in (``Backend.precision``): decides its default policy
    precision: str = "fp32"
    #: per output: the policy in force and the metrics over every example (``judge.MetricAggregate``)
    metrics: dict[str, MetricAggregate] = field(default_factory=dict)

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.worst.values()), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((c.max_rel for c in self.worst.values()), default=0.0)

    @property
    def tolerance_ratio(self) -> float:
        return max((c.tolerance_ratio for c in self.worst.values()), default=0.0)

    def record(self, comparisons: list[OutputComparison]) -> None:
        self.examples += 1
        for c in comparisons:
            seen = self.worst.get(c.name)
            if seen is None or c.problem or (not seen.problem and c.tolerance_ratio > seen.tolerance_ratio):
                self.worst[c.name] = c

    def record_judged(self, judged: list[Judged]) -> None:
        """One example's comparisons and metrics, judged by the policy."""
        self.record([j.comparison for j in judged])
        for j in judged:
            aggregate = self.metrics.setdefault(j.comparison.name, MetricAggregate(j.thresholds))
            if j.figures is not None:
                aggregate.add(j.figures)


@dataclass
class ParityReport:
    """What ``xframe.check`` returns: per backend, per output figures."""

    test_id: str
    options: CheckOptions
    model: str = ""
    backends: dict[str, BackendResult] = field(default_factory=dict)
    #: the seed hypothesis drew this check's inputs from, when the plugin chose or was given one
    seed: int | None = None

    def __getitem__(self, backend: str) -> BackendResult:
        return self.backends[backend]

    @property
    def passed(self) -> bool:
        return all(r.verdict == "passed" for r in self.backends.values())


@dataclass
class _Target:
    """A backend ready to run: its runner and the ONNX model it came from."""

    backend: str
    artifact: OnnxArtifact
    prepared: Prepared

    @property
    def label(self) -> str:
        """What the backend ran: the ONNX model's exporter and opset, or its own route from torch."""
        return self.prepared.route or f"ONNX from {self.artifact.label}"


#: torch outputs kept for reuse across a model's checks in one session (least recently used go first)
REFERENCE_CACHE_BYTES = 256 * 2**20


class Engine:
    """Session-wide: exports and prepared backends, memoised by what determines them.

    Failures are memoised too, so a model that cannot convert fails fast in every test using it.
    torch's outputs are memoised per model and input: the marker checks each backend in a test of
    its own, both start from one seed (``example_seed``), and an input they share runs torch once.
    """

    def __init__(self, workdir: Path, cache: ArtifactCache, threads: int | None = None, shared_exports: ArtifactCache | None = None) -> None:
        self.workdir = workdir
        self.cache = cache
        #: this run's exports, shared by its pytest-xdist workers (``shared_export``); None when serial
        self.shared_exports = shared_exports
        #: CPU threads per framework pool (``threads.resolve``); None leaves the frameworks' own
        self.threads = threads
        self._threads_set: set[str] = set()
        self._exports: dict[tuple, OnnxArtifact | XframeError] = {}
        self._prepared: dict[tuple, Prepared | XframeError] = {}
        self._output_names: dict[tuple, tuple[str, ...]] = {}
        self._references: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
        self._reference_bytes = 0
        self._seed_base = random.SystemRandom().getrandbits(64)

    def export(self, key: tuple, make: Any) -> tuple[OnnxArtifact, bool]:
        """The ONNX export for ``key``, and whether this call made it (False: made earlier in this
        session, or by another xdist worker of this run)."""
        fresh = key not in self._exports
        if fresh:
            out = self.workdir / f"export-{len(self._exports)}"
            try:
                if self.shared_exports is None:
                    self._exports[key] = make(out)
                else:
                    self._exports[key], fresh = shared_export(self.shared_exports, key, make, out)
            except XframeError as exc:
                self._exports[key] = exc
        found = self._exports[key]
        if isinstance(found, XframeError):
            raise found
        return found, fresh

    def prepare(self, backend: str, artifact: OnnxArtifact, model_name: str, source: TorchSource | None = None) -> tuple[Prepared, bool, float]:
        """The backend's runner for this ONNX model, whether it was built now, and the seconds
        its framework's import took (0 when it was imported before)."""
        key = (backend, str(artifact.path))
        fresh = key not in self._prepared
        import_seconds = 0.0
        if fresh:
            spec = backends.get(backend)
            ctx = BuildContext(model_name=model_name, workdir=artifact.path.parent, cache=self.cache, torch=source, threads=self.threads)
            try:
                # missing: a skip naming the extra; installed but broken: a ConversionError
                import_seconds = import_converter(
                    spec.import_framework, name=", ".join(spec.framework), backend=backend, model_name=model_name,
                    hint=spec.install_hint,
                )
                for framework in spec.framework:
                    self.limit_threads(framework)
                self._prepared[key] = spec.prepare(artifact, ctx)
            except XframeError as exc:
                self._prepared[key] = exc
        found = self._prepared[key]
        if isinstance(found, XframeError):
            raise found
        return found, fresh, import_seconds

    def limit_threads(self, framework: str) -> None:
        """Size a framework's thread pools once per process (torch, tensorflow; ORT is per session)."""
        if self.threads is None or framework in self._threads_set:
            return
        self._threads_set.add(framework)
        from . import threads

        if framework == "torch":
            threads.limit_torch(self.threads)
        elif framework == "tensorflow":
            threads.limit_tensorflow(self.threads)

    def output_names(self, key: tuple, make: Any) -> tuple[str, ...]:
        """Output names of a model for given inputs, found by one torch run per session."""
        if key not in self._output_names:
            self._output_names[key] = make()
        return self._output_names[key]

    def reference(self, key: tuple, feeds: Mapping[str, np.ndarray], compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """torch's outputs for ``feeds`` of the model ``key`` names: kept from an earlier run, or
        ``compute``d now and kept."""
        entry = (key, feeds_digest(feeds))
        found = self._references.get(entry)
        if found is not None:
            self._references.move_to_end(entry)
            return found
        outputs = compute()
        size = sum(a.nbytes for a in outputs.values())
        if size <= REFERENCE_CACHE_BYTES:
            self._references[entry] = {k: np.array(a, copy=True) for k, a in outputs.items()}
            self._reference_bytes += size
            while self._reference_bytes > REFERENCE_CACHE_BYTES:
                _, dropped = self._references.popitem(last=False)
                self._reference_bytes -= sum(a.nbytes for a in dropped.values())
        return outputs

    def example_seed(self, key: tuple) -> int:
        """The seed hypothesis draws a check's inputs from: one per test, model and session, so the
        marker's runs of a test (one per backend) draw the same inputs and share torch's outputs.
        Random per session, as hypothesis's own; fixed where hypothesis is fixed
        (``--hypothesis-seed``, a ``derandomize`` profile such as its ``ci`` one)."""
        from hypothesis import core, settings

        forced = getattr(core, "global_force_seed", None)
        base = forced if forced is not None else (0 if settings.default.derandomize else self._seed_base)
        return int.from_bytes(hashlib.sha256(repr((base, key)).encode()).digest()[:8], "big")


def feeds_digest(feeds: Mapping[str, np.ndarray]) -> bytes:
    """Identity of one input: every array's name, dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(feeds):
        a = np.ascontiguousarray(feeds[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.data if a.size and not a.dtype.hasobject else a.tobytes())
    return h.digest()


#: module globals whose value ``model_fingerprint`` reads: flags and numbers a ``forward`` branches on
_PLAIN_VALUES = (bool, int, float, complex, str, bytes, type(None))


def _code_and_globals(code: Any, namespace: Mapping[str, Any], h: Any) -> None:
    """Hash ``code`` (and the code nested in it: comprehensions, lambdas) with the plain values of
    the module globals it names, so that flipping a flag ``forward`` reads makes a new export."""
    h.update(code.co_code)
    h.update(repr(tuple(c for c in code.co_consts if not hasattr(c, "co_code"))).encode())
    for name in code.co_names:
        if name in namespace and isinstance(namespace[name], _PLAIN_VALUES):
            h.update(f"{name}={namespace[name]!r};".encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _code_and_globals(const, namespace, h)


def model_fingerprint(model: Any) -> str:
    """Identity of a model for this session: classes, code, the plain module globals that code
    names, structure and every weight. Code that ``forward`` calls in other functions, and globals
    those read, are not seen."""
    h = hashlib.sha256()
    for module in model.modules():
        cls = type(module)
        h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        code = getattr(cls.forward, "__code__", None)
        if code is not None:
            _code_and_globals(code, getattr(cls.forward, "__globals__", {}), h)
    h.update(repr(model).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(__import__("torch").uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def shared_export(store: ArtifactCache, key: tuple, make: Callable[[Path], OnnxArtifact], out: Path) -> tuple[OnnxArtifact, bool]:
    """Export once per run for all pytest-xdist workers: the first builds the entry under the
    store's lock, the others copy its ONNX file into ``out`` (their converters write beside it).

    As sound as the session's own memo, which has the same key: the model fingerprint cannot see
    code that ``forward`` calls, but that code cannot change between the workers of one run.
    Returns the artifact and whether this worker exported it. A failed export is not stored.
    """
    made: list[OnnxArtifact] = []

    def build(files: Path) -> None:
        artifact = make(files)
        made.append(artifact)
        described = {k: v for k, v in asdict(artifact).items() if k != "path"}
        (files / "artifact.json").write_text(json.dumps({**described, "file": artifact.path.name}))

    entry = store.get_or_build("onnx-export", {"key": hashlib.sha256(repr(key).encode()).hexdigest()}, build)
    meta = json.loads((entry.path / "artifact.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    path = out / meta.pop("file")
    try:
        os.link(entry.path / path.name, path)  # entries are never written again: a hard link is a copy
    except OSError:
        shutil.copyfile(entry.path / path.name, path)
    described = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.items()}
    return OnnxArtifact(path=path, **described), bool(made)


def _validate_model(model: Any, name: str) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise SpecError(
            f"xframe.check needs a torch.nn.Module, got {type(model).__name__}",
            hint="pass the model instance, e.g. xframe.check(MyModel().eval(), inputs=[...])",
        )
    training = [n or type(model).__name__ for n, m in model.named_modules() if m.training]
    if training:
        raise SpecError(
            "model is in training mode: dropout and batch-norm make its outputs random, so no backend can match",
            model=name,
            cause=f"training=True on {', '.join(training[:3])}" + (f" and {len(training) - 3} more" if len(training) > 3 else ""),
            hint="call model.eval() before xframe.check",
        )


def _slots_key(slots: tuple[InputSlot, ...]) -> tuple:
    return tuple((s.name, s.spec, None if s.value is None else (s.value.dtype.str, s.value.shape, s.value.tobytes())) for s in slots)


def _export_plan(backend: backends.Backend, options: CheckOptions) -> tuple[tuple[str, int | None], ...]:
    if options.exporter is not None:
        return ((options.exporter, options.opset),)
    if options.opset is not None:
        return tuple(dict.fromkeys((exp, options.opset) for exp, _ in backend.exports))
    return backend.exports


def run_check(
    engine: Engine,
    model: Any,
    inputs: Any,
    options: CheckOptions,
    *,
    report: ParityReport,
    artifacts_root: Path,
    siblings: tuple = (),
) -> ParityReport:
    """The whole check; raises ParityError / ExportError / ConversionError, returns the report.

    ``siblings`` names the test a check belongs to apart from its backend (``Xframe.check``): the
    marker's runs of one test share their seed and torch's outputs, other tests draw their own.
    """
    __tracebackhide__ = True
    import_hypothesis()
    from hypothesis import HealthCheck, given, seed, settings

    name = options.name or type(model).__name__
    report.model = name
    _validate_model(model, name)
    slots = bind_inputs(model, inputs, name)
    shared_dims(slots)
    params = [p.name for p in forward_parameters(model)]
    positional = [s.name for s in slots] == params[: len(slots)]
    test_id = report.test_id
    modes = [(m, m.training) for m in model.modules()]
    engine.limit_threads("torch")
    try:
        fingerprint = model_fingerprint(model)
        slots_key = _slots_key(slots)
        output_names = engine.output_names(
            (fingerprint, slots_key), lambda: tuple(torch_outputs(model, example_feeds(slots), [s.name for s in slots], positional))
        )
        check_names(options.policy, output_names, backends.BACKENDS, name)
        targets = [_prepare_backend(engine, b, model, slots, output_names, options, fingerprint, positional, name, report) for b in options.backends]
        vacuity = VacuityTracker()
        # torch's outputs are shared only between the runs of one test: a model's forward may read
        # state its fingerprint cannot see (a global flag another test sets)
        model_key = (siblings, fingerprint, slots_key)
        run_one = _example_runner(model, model_key, engine, [s.name for s in slots], targets, options, positional, report, name, vacuity)

        @settings(
            max_examples=options.max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
            report_multiple_bugs=False,
            # the explain phase lists lines of our own code that only failing runs took: noise here
            phases=[p for p in settings.default.phases if p.name != "explain"],
        )
        @given(feeds_strategy(slots))
        def parity(feeds: Feeds) -> None:
            __tracebackhide__ = True
            run_one(feeds)

        parity.hypothesis.inner_test._hypothesis_internal_add_digest = (  # type: ignore[attr-defined]
            f"{test_id}|{','.join(options.backends)}|{fingerprint}".encode()
        )
        if options.seed is not None:
            parity = seed(options.seed)(parity)
            report.seed = options.seed
        elif getattr(parity, "_hypothesis_internal_use_seed", 0) is None:
            # what @seed sets, without @seed's side effect of switching the example database off
            parity._hypothesis_internal_use_seed = report.seed = engine.example_seed(model_key)  # type: ignore[attr-defined]
        try:
            parity()
        except _RuntimeCrash as crash:
            raise crash.error from crash.__cause__
        except ParityError as failure:
            _finish_failure(failure, report, targets, artifacts_root, test_id, options, model, positional, engine.workdir)
        _warn_vacuous(vacuity, report, name)
        _judge_aggregates(report, name)
        for result in report.backends.values():
            if result.verdict == "pending":
                result.verdict = "passed"
        return report
    except XframeError as exc:
        _keep_error(exc, artifacts_root, test_id)
        for result in report.backends.values():
            if result.verdict == "pending":
                result.verdict = "skipped" if isinstance(exc, BackendUnavailable) else "error"
                result.message = result.message or first_line(str(exc))
                result.artifacts = exc.kept
        raise
    finally:
        for module, mode in modes:  # exporters may flip modes; put every module back as it was
            module.training = mode


def _prepare_backend(engine, backend_name, model, slots, output_names, options, fingerprint, positional, name, report) -> _Target:
    backend = backends.get(backend_name)
    result = report.backends.setdefault(backend_name, BackendResult(backend_name, precision=backend.precision))
    missing = backend.missing()
    if missing:
        raise BackendUnavailable(f"backend {backend_name} is not installed", model=name, backend=backend_name, cause=missing)
    errors: list[XframeError] = []
    for exporter, opset in _export_plan(backend, options):
        key = (fingerprint, _slots_key(slots), exporter, opset)
        try:
            artifact, fresh_export = engine.export(
                key,
                lambda d: export(model, slots, output_names, exporter=exporter, opset=opset, out_dir=d, model_name=name, positional=positional),
            )
        except ExportError as exc:
            errors.append(_for_backend(exc, backend_name, None))
            continue
        try:
            prepared, fresh_prepare, import_seconds = engine.prepare(backend_name, artifact, name, TorchSource(model, slots, positional))
        except ConversionError as exc:
            errors.append(_for_backend(exc, backend_name, artifact.path))
            continue
        result.onnx = prepared.route or artifact.label
        result.export_seconds = artifact.seconds if fresh_export else 0.0
        result.import_seconds = import_seconds
        result.convert_seconds = prepared.convert_seconds if fresh_prepare else 0.0
        result.load_seconds = prepared.load_seconds if fresh_prepare else 0.0
        result.cache_hit = prepared.cache_hit or not fresh_prepare
        if errors:
            result.message = "fell back to " + result.onnx + " after: " + "; ".join(first_line(str(e)) for e in errors)
        return _Target(backend_name, artifact, prepared)
    first = errors[0]
    if len(errors) > 1:
        first.cause = (first.cause or "") + "".join(f"\n  also failed: {first_line(str(e))}" for e in errors[1:])
    raise first


class _RuntimeCrash(BaseException):
    """Carries a backend's run-time crash out of hypothesis, which re-raises BaseException at once."""

    def __init__(self, error: XframeError) -> None:
        super().__init__(str(error))
        self.error = error


def _informative_lines(text: str, limit: int = 400) -> str:
    """The lines of a framework error that say what broke, without TF's boilerplate and stacks."""
    import re

    boring = ("Graph execution error", "Detected at node", "File ", "Traceback", "[[", "Stack trace", "<stack traces", "  ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(boring)]
    lines = [ln for ln in lines if not ln.startswith(boring)] or [text.strip()]
    nodes = re.findall(r"\{\{node ([^}]+)\}\}", text)
    if nodes:
        lines.append(f"at node {nodes[0]}")
    joined = " | ".join(dict.fromkeys(lines))
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def _for_backend(exc: XframeError, backend: str, onnx_path: Path | None) -> XframeError:
    """A copy of a session-memoised error that names this backend and the ONNX model it had."""
    exc = copy.copy(exc)
    exc.backend = backend
    exc.onnx_path = onnx_path  # type: ignore[attr-defined]
    return exc


def _keep_error(exc: XframeError, root: Path, test_id: str) -> None:
    """An export or conversion failure keeps the ONNX model and the full traceback for later."""
    if not exc.details or not exc.backend:
        return
    directory = artifacts.case_dir(root, test_id, exc.backend)
    artifacts.save_error(directory, text=f"{exc}\n\n{exc.details}", onnx_path=getattr(exc, "onnx_path", None))
    exc.kept = artifacts.shown(directory)


def _mismatch(text: str, *, model: str, backend: str, feeds: Feeds, reference: dict, outputs: dict, comparisons: dict) -> ParityError:
    """A ParityError carrying what the final report and the artifacts need."""
    error = ParityError(text, model=model, backend=backend)
    error.feeds, error.reference, error.outputs, error.comparisons = feeds, reference, outputs, comparisons
    return error


def _example_runner(model, model_key: tuple, engine: Engine, names: list[str], targets: list[_Target], options: CheckOptions, positional: bool, report: ParityReport, name: str, vacuity: VacuityTracker):
    from hypothesis import target

    policies = {t.backend: policy_for(options, t.backend, report.backends[t.backend].precision) for t in targets}

    def run_one(feeds: Feeds) -> None:
        __tracebackhide__ = True
        start = time.perf_counter()
        reference = engine.reference(model_key, feeds, lambda: torch_outputs(model, feeds, names, positional))
        torch_seconds = time.perf_counter() - start
        vacuity.see(feeds_digest(feeds), reference)
        failing: dict[str, list[OutputComparison]] = {}
        failing_judged: dict[str, list[Judged]] = {}
        outputs: dict[str, dict] = {}
        for t in targets:
            result = report.backends[t.backend]
            start = time.perf_counter()
            try:
                got = t.prepared.runner.run(feeds)
            except Exception as exc:
                # a crash is not a numeric mismatch: stop at the first input that causes it
                # instead of letting hypothesis shrink (each try costs a framework error)
                raise _RuntimeCrash(
                    XframeError(
                        f"{t.backend} raised while running the converted model ({t.label})",
                        model=name,
                        backend=t.backend,
                        cause=f"{type(exc).__name__}: {_informative_lines(str(exc))}\n  input: {feeds!r}",
                        hint="the converted model may not support these shapes or values; run with -v for the full error",
                        details="".join(traceback.format_exception(exc)),
                    )
                ) from exc
            result.run_seconds += time.perf_counter() - start + torch_seconds / len(targets)
            judged = judge_example(reference, got, policies[t.backend], options.equal_nan)
            result.record_judged(judged)
            comparisons = [j.comparison for j in judged]
            worst = max((c.tolerance_ratio for c in comparisons if not c.problem), default=0.0)
            target(min(worst, 1e12), label=f"tolerance ratio, {t.backend}")
            outputs[t.backend] = got
            if not all(c.ok for c in comparisons):
                failing[t.backend] = comparisons
                failing_judged[t.backend] = judged
        if failing:
            lines = [f"{name}: outputs differ from torch on {', '.join(failing)}", f"input: {feeds!r}"]
            for backend_name, judged in failing_judged.items():
                t = next(t for t in targets if t.backend == backend_name)
                lines.append(f"[{backend_name}] ran {t.label} ({report.backends[backend_name].precision})")
                lines.extend("  " + format_judged(j).replace("\n", "\n  ") for j in judged if not j.comparison.ok)
            raise _mismatch(
                "\n".join(lines), model=name, backend=",".join(failing), feeds=feeds, reference=reference,
                outputs={b: outputs[b] for b in failing}, comparisons=failing,
            )

    return run_one


def _warn_vacuous(vacuity: VacuityTracker, report: ParityReport, name: str) -> None:
    """VacuousCheckWarning for a check that cannot fail; where ``-W error`` makes it an error,
    the report's verdict says so."""
    __tracebackhide__ = True
    try:
        vacuity.warn(name, report.test_id)
    except VacuousCheckWarning as exc:
        for result in report.backends.values():
            result.verdict, result.message = "failed", str(exc)
        raise


def _judge_aggregates(report: ParityReport, name: str) -> None:
    """Thresholds judged over all examples (top-k agreement): a ParityError naming each figure."""
    __tracebackhide__ = True
    lines = []
    for backend_name, result in report.backends.items():
        failed = {n: a.topk_failure() for n, a in result.metrics.items()}
        failed = {n: why for n, why in failed.items() if why}
        if failed:
            result.verdict = "failed"
            result.message = "; ".join(f"{n}: {why}" for n, why in failed.items())
            lines.append(f"[{backend_name}] ({result.precision}) over {result.examples} example(s):")
            lines.extend(f"  output {n!r}: fails its policy: {why}\n    " + format_aggregate(n, result.metrics[n]) for n, why in failed.items())
    if lines:
        raise ParityError("\n".join([f"{name}: outputs differ from torch over the examples drawn"] + lines), model=name, backend=",".join(
            b for b, r in report.backends.items() if r.verdict == "failed"))


def _diagnose(t: _Target, failure: ParityError, comparisons: list[OutputComparison], model: Any, positional: bool, workdir: Path, name: str, options: CheckOptions) -> str:
    """Which step broke (export, conversion, runtime) and the first ONNX node where it shows.

    Only runs on the final, minimal failing input; a diagnosis that itself fails says so in a
    line and never hides the mismatch.
    """
    from .backends.onnxruntime_runner import make_session
    from .divergence import attribute_step, locate_conversion_divergence, locate_export_divergence

    if backends.get(t.backend).source == "torch":
        return f"diagnosis: {t.backend} converts the torch module directly, so its conversion introduced the error (no ONNX node on its route to name)"
    worst = max((c for c in comparisons if not c.ok), key=lambda c: c.tolerance_ratio)
    atol, rtol = worst.atol, worst.rtol  # the policy's, for this output
    try:
        backend_out = failure.outputs[t.backend]
        if t.backend == "onnxruntime":
            ort_out, converted = backend_out, None
        else:
            ort_out, converted = make_session(str(t.artifact.path)).run(failure.feeds), backend_out
        step = attribute_step(failure.reference, ort_out, converted, options.tolerance, equal_nan=options.equal_nan)
        located = None
        if step == "export":
            located = locate_export_divergence(model, str(t.artifact.path), failure.feeds, atol, rtol, positional)
        elif step == "conversion" and t.backend == "tensorflow":
            located = locate_conversion_divergence(str(t.artifact.path), failure.feeds, atol, rtol, workdir, name)
    except Exception as exc:  # a diagnosis is a bonus: report why it failed, keep the mismatch
        return f"diagnosis: could not locate the divergence ({type(exc).__name__}: {first_line(str(exc))[:200]})"
    lines = [f"diagnosis: the {step} step introduced the error" if step != "unknown" else "diagnosis: the step could not be pinned down"]
    if located is not None:
        lines.append(located.format())
    return "\n".join(lines)


def _converted_path(t: _Target, feeds: Mapping[str, np.ndarray]) -> Path | None:
    """The converted model that ran ``feeds``: one per input shape for some routes (litert-torch)."""
    per_input = getattr(t.prepared.runner, "converted_path_for", None)
    return per_input(feeds) if per_input is not None else t.prepared.converted_path


def _finish_failure(
    failure: ParityError, report: ParityReport, targets: list[_Target], root: Path, test_id: str, options: CheckOptions,
    model: Any, positional: bool, workdir: Path,
) -> None:
    """Diagnose and save the minimal failing case per failing backend, then re-raise with the replay hint."""
    __tracebackhide__ = True
    hints = []
    for backend_name, comparisons in failure.comparisons.items():
        result = report.backends[backend_name]
        result.verdict = "failed"
        for c in comparisons:  # the minimal failing example's figures are the ones to report
            if not c.ok:
                result.worst[c.name] = c
        result.message = "; ".join(f"{c.name}: {c.problem or f'max abs {c.max_abs:.3g}'}" for c in comparisons if not c.ok)
        directory = artifacts.case_dir(root, test_id, backend_name)
        t = next(t for t in targets if t.backend == backend_name)
        result.diagnosis = _diagnose(t, failure, comparisons, model, positional, workdir, report.model, options)
        artifacts.save_case(
            directory,
            case={
                "test_id": test_id,
                "model": report.model,
                "backend": backend_name,
                "onnx": result.onnx,
                "input_names": list(t.artifact.input_names),
                "output_names": list(t.artifact.output_names),
                "options": {k: v for k, v in vars(options).items()},
                "inputs": {k: describe_array(v) for k, v in failure.feeds.items()},
                "comparisons": [c.to_dict() for c in comparisons],
                "diagnosis": result.diagnosis,
            },
            inputs=failure.feeds,
            reference=failure.reference,
            backend_outputs=failure.outputs[backend_name],
            onnx_path=t.artifact.path,
            converted_path=_converted_path(t, failure.feeds),
        )
        result.artifacts = str(directory)
        from .plots import save_error_plot

        for c in comparisons:
            if not c.ok and not c.problem:
                plot = save_error_plot(directory, c.name, failure.reference[c.name], failure.outputs[backend_name][c.name], c.atol, c.rtol)
                if plot is not None:
                    hints.append(f"[{backend_name}] error plot of {c.name!r}: {artifacts.shown(plot)}")
        hints.extend(f"[{backend_name}] " + format_aggregate(n, a) for n, a in result.metrics.items() if a.examples)
        hints.append(result.diagnosis.replace("\n", "\n  ") if result.diagnosis.startswith("diagnosis:") else result.diagnosis)
        hints[-1] = f"[{backend_name}] {hints[-1]}"
        shown = artifacts.shown(directory)
        if backends.get(backend_name).source == "onnx":  # the ONNX model and its conversion are kept
            hints.append(f"[{backend_name}] artifacts: {shown}\n  replay: python -m pytest_xframe replay {shown}")
        else:
            hints.append(f"[{backend_name}] artifacts: {shown}\n  replay: rerun the test ({backend_name} converts the torch module, which is not kept)")
    failure.report_text += "\n" + "\n".join(hints)
    raise failure

