"""The session's engine: exports and prepared backends memoised by what determines them, torch's
outputs per model and input, the model fingerprint those memos key on, exports shared by the
pytest-xdist workers of a run, and the seed a check draws its inputs from."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Backend, BuildContext, Prepared, Registry, TorchSource, registry
from .cache import ArtifactCache
from .convert import import_converter
from .errors import XframeError
from .export import OnnxArtifact
from .hypothesis_compat import forced_seed

#: torch outputs kept for reuse across a model's checks in one session (least recently used go first)
REFERENCE_CACHE_BYTES = 256 * 2**20


class Engine:
    """Session-wide: exports and prepared backends, memoised by what determines them.

    Failures are memoised too, so a model that cannot convert fails fast in every test using it.
    torch's outputs are memoised per model and input: the marker checks each backend in a test of
    its own, both start from one seed (``example_seed``), and an input they share runs torch once.
    """

    def __init__(
        self, workdir: Path, cache: ArtifactCache, threads: int | None = None, shared_exports: ArtifactCache | None = None,
        backends: Registry | None = None,
    ) -> None:
        self.workdir = workdir
        #: the backends checks may name: the session's (built-ins, entry points, plugins' hooks)
        self.backends = backends if backends is not None else registry()
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

    def prepare(self, spec: Backend, artifact: OnnxArtifact, model_name: str, source: TorchSource | None = None) -> tuple[Prepared, bool, float]:
        """The backend's runner for this ONNX model, whether it was built now, and the seconds
        its framework's import took (0 when it was imported before)."""
        key = (spec.name, str(artifact.path))
        fresh = key not in self._prepared
        import_seconds = 0.0
        if fresh:
            ctx = BuildContext(model_name=model_name, workdir=artifact.path.parent, cache=self.cache, torch=source, threads=self.threads)
            try:
                # missing: a skip naming the extra; installed but broken: a ConversionError
                import_seconds = import_converter(
                    spec.import_framework, name=", ".join(spec.framework), backend=spec.name, model_name=model_name,
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
        from .threads import limit_framework

        limit_framework(framework, self.threads)

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
        from hypothesis import settings

        forced = forced_seed()
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

