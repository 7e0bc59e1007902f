"""The session's memo: exports and prepared backends memoised by what determines them, torch's
outputs per model and input, the model fingerprint those memos key on, exports shared by the
pytest-xdist workers of a run (or, on the user's ``export_key``, across runs: ``export.cache``), and
the seed a check draws its inputs from. Every memo is bounded, so a session over many models
holds the runners of the last few only."""

from __future__ import annotations

import random
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import Backend, BuildContext, Prepared, Registry, TorchSource, registry
from ..backends.conversion import import_converter
from ..cache import ArtifactCache
from ..errors import USER_CODE_FAILURES, ConversionError, DiskFullError, XframeError, describe_exception, disk_full
from ..export.cache import KEYED_KIND, shared_export, stored_export
from ..export.to_onnx import OnnxArtifact
from ..identity import feeds_digest, int_digest
from ..inputs.calibration import Calibration
from ..quiet import captured
from .hypothesis_compat import forced_seed

#: torch outputs kept for reuse across a model's checks in one session (least recently used go first)
REFERENCE_CACHE_BYTES = 256 * 2**20
#: prepared runners (ORT sessions, loaded SavedModels, interpreters) kept in memory at once, and
#: the bytes of the ONNX models they hold: a session checking many models keeps the most recently
#: used and releases the rest, which the next use rebuilds (from the conversion cache on disk)
PREPARED_MEMO = 8
PREPARED_MEMO_BYTES = 4 * 2**30
#: runners of models at least this big (their ONNX files' bytes) are released when the test module
#: that used them ends (``release_large``): a big model's tests sit together, and its TF graph or
#: ORT session must not stay in memory through the rest of the session; smaller runners stay
#: memoised for the next module's tests of the same model
RELEASE_AFTER_MODULE_BYTES = 256 * 2**20
#: exports (paths and names, a few hundred bytes each) and output names remembered per session
EXPORT_MEMO = 64
OUTPUT_NAMES_MEMO = 256


def _remember(memo: OrderedDict, key: Any, value: Any, limit: int) -> None:
    """Put ``key`` last in an LRU memo and drop the oldest beyond ``limit``."""
    memo[key] = value
    memo.move_to_end(key)
    while len(memo) > limit:
        memo.popitem(last=False)


def _return_freed_memory() -> None:
    """Hand the memory of released runners back to the OS (glibc keeps freed heap pages, so a
    session over many models would otherwise grow by fragments of each); elsewhere a no-op."""
    import ctypes
    import gc
    import sys

    if not sys.platform.startswith("linux"):
        return
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        pass


def _file_bytes(artifact: OnnxArtifact) -> int:
    """The bytes of the export's files that exist (a backend that converts the torch module may
    be prepared from an export it never wrote)."""
    return sum(f.stat().st_size for f in artifact.files if f.exists())


class SessionMemo:
    """Session-wide: exports and prepared backends, memoised by what determines them.

    Failures are memoised too, so a model that cannot convert fails fast in every test using it.
    torch's outputs are memoised per model and input: the marker checks each backend in a test of
    its own, both start from one seed (``example_seed``), and an input they share runs torch once.
    Every memo is bounded (least recently used go first), so a session over many models holds
    the runners of the last few only.
    """

    def __init__(
        self, workdir: Path, cache: ArtifactCache, threads: int | None = None, shared_exports: ArtifactCache | None = None,
        backends: Registry | None = None, rootdir: Path | None = None,
    ) -> None:
        self.workdir = workdir
        #: the backends checks may name: the session's (built-ins, entry points, plugins' hooks)
        self.backends = backends if backends is not None else registry()
        self.cache = cache
        #: this run's exports, shared by its pytest-xdist workers (``shared_export``); None when serial
        self.shared_exports = shared_exports
        #: CPU threads per framework pool (``threads.resolve``); None leaves the frameworks' own
        self.threads = threads
        #: where ``export_key`` file paths are relative to (pytest's rootdir)
        self.rootdir = rootdir or Path.cwd()
        self._threads_set: set[Callable[[int], object]] = set()
        self._exports: OrderedDict[tuple, OnnxArtifact | XframeError] = OrderedDict()
        self._export_count = 0
        self._from_cache: OrderedDict[tuple, bool] = OrderedDict()
        self._prepared: OrderedDict[tuple, Prepared | XframeError] = OrderedDict()
        self._prepared_bytes: dict[tuple, int] = {}
        self._output_names: OrderedDict[tuple, tuple[str, ...]] = OrderedDict()
        self._references: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
        self._reference_bytes = 0
        self._seed_base = random.SystemRandom().getrandbits(64)

    def memo_sizes(self) -> dict[str, int]:
        """Entries in each memo (and bytes held by prepared runners' models): bounded by design."""
        return {
            "exports": len(self._exports), "prepared": len(self._prepared), "prepared_bytes": sum(self._prepared_bytes.values()),
            "output_names": len(self._output_names), "references": len(self._references),
        }

    def export(self, key: tuple, make: Any, keyed: dict[str, str] | None = None) -> tuple[OnnxArtifact, bool]:
        """The ONNX export for ``key``, and whether this call made it (False: made earlier in this
        session, by another xdist worker of this run, or, with ``keyed`` (the ``export_key``
        entry), by an earlier run: ``from_cache`` says which)."""
        found = self._exports.get(key)
        fresh = found is None
        from_cache = self._from_cache.get(key, False)
        if fresh:
            out = self.workdir / f"export-{self._export_count}"
            self._export_count += 1
            try:
                if keyed is not None:
                    found, fresh = stored_export(self.cache, KEYED_KIND, keyed, make, out)
                    from_cache = not fresh
                elif self.shared_exports is None:
                    found = make(out)
                else:
                    found, fresh = shared_export(self.shared_exports, key, make, out)
            except XframeError as exc:
                found = exc
            except OSError as exc:  # placing a stored export's files
                found = disk_full(exc, out, 0, doing="placing an export's files")
                if found is None:
                    raise
        if isinstance(found, DiskFullError):
            raise found  # not remembered: the next check may find room
        _remember(self._exports, key, found, EXPORT_MEMO)
        _remember(self._from_cache, key, from_cache, EXPORT_MEMO)
        if isinstance(found, XframeError):
            raise found
        return found, fresh

    def from_cache(self, key: tuple) -> bool:
        """Whether this session's export for ``key`` was read from an earlier run's (``export_key``)."""
        return self._from_cache.get(key, False)

    def prepare(
        self, spec: Backend, artifact: OnnxArtifact, model_name: str, source: TorchSource | None = None,
        calibration: Calibration | None = None, int8_io: bool = False,
    ) -> tuple[Prepared, bool, float]:
        """The backend's runner for this ONNX model, whether it was built now, and the seconds
        its framework's import took (0 when it was imported before). A calibrated backend's runner
        is kept per calibration samples and int8 I/O too."""
        key = (spec.name, str(artifact.path), calibration.digest if calibration else None, int8_io)
        found = self._prepared.get(key)
        fresh = found is None
        import_seconds = 0.0
        size = _file_bytes(artifact)
        if fresh:
            self._make_room(size)
            found, import_seconds = self._build(spec, artifact, model_name, source, calibration, int8_io)
        if isinstance(found, DiskFullError):
            raise found  # not remembered: the next check may find room
        self._keep_prepared(key, found, 0 if isinstance(found, XframeError) else size)
        if isinstance(found, XframeError):
            raise found
        return found, fresh, import_seconds

    def _build(
        self, spec: Backend, artifact: OnnxArtifact, model_name: str, source: TorchSource | None,
        calibration: Calibration | None = None, int8_io: bool = False,
    ) -> tuple[Prepared | XframeError, float]:
        ctx = BuildContext(
            model_name=model_name, workdir=artifact.path.parent, cache=self.cache, torch=source, threads=self.threads,
            calibration=calibration, int8_io=int8_io,
        )
        import_seconds = 0.0
        try:
            # the converters' logs (absl, TensorFlow's C++ lines) go into an error's details, not the report
            with captured() as printed:
                # missing: a skip naming the extra; installed but broken: a ConversionError
                import_seconds = import_converter(
                    spec.import_framework, name=", ".join(spec.framework), backend=spec.name, model_name=model_name,
                    hint=spec.install_hint,
                )
                self.limit_threads(spec.limit_threads)
                return spec.prepare(artifact, ctx), import_seconds
        except XframeError as exc:
            if exc.details:  # an error without a traceback (a refusal up front) stays without one
                exc.details += printed.section()
            return self._disk_full(exc, spec, artifact, model_name) or exc, import_seconds
        except MemoryError:
            raise
        except USER_CODE_FAILURES as exc:  # a backend plugin's bug must not surface as its traceback
            full = self._disk_full(exc, spec, artifact, model_name)
            if full is not None:
                return full, import_seconds
            return ConversionError(
                f"backend {spec.name} raised while preparing the model (a bug in the backend or its converter)",
                model=model_name, backend=spec.name, cause=describe_exception(exc),
                hint="run with -v for the full traceback; report it to the backend's authors",
                details="".join(traceback.format_exception(exc)) + printed.section(),
            ), import_seconds

    def _disk_full(self, exc: BaseException, spec: Backend, artifact: OnnxArtifact, model_name: str) -> XframeError | None:
        """A full disk while converting, as DiskFullError: the conversion writes about the export's
        size (a SavedModel's variables, a flatbuffer) into the cache, or the scratch dir without one."""
        where = self.cache.root or self.cache.scratch or artifact.path.parent
        needed = _file_bytes(artifact)
        return disk_full(exc, where, needed, doing=f"converting for {spec.name}", model=model_name, backend=spec.name)

    def _keep_prepared(self, key: tuple, value: Prepared | XframeError, size: int) -> None:
        """Remember a runner; release the least recently used beyond the count or byte bound
        (never the one just used)."""
        self._prepared[key] = value
        self._prepared.move_to_end(key)
        self._prepared_bytes[key] = size
        self._release_beyond(PREPARED_MEMO, PREPARED_MEMO_BYTES, keep=1)

    def _make_room(self, size: int) -> None:
        """Before building a runner for a model of ``size`` bytes, release the least recently used
        ones that would leave it past the bounds: a big model's runners (a SavedModel's
        variables, an ORT session's weights) are freed before the next model converts, not after."""
        self._release_beyond(PREPARED_MEMO - 1, PREPARED_MEMO_BYTES - size, keep=0)

    def _release_beyond(self, count: int, size: int, keep: int) -> None:
        """Drop least recently used runners while more than ``count`` or ``size`` bytes are held
        (``keep``: how many, the most recent, stay regardless); hand their memory back."""
        released = False
        while len(self._prepared) > keep and (len(self._prepared) > count or sum(self._prepared_bytes.values()) > size):
            dropped, _ = self._prepared.popitem(last=False)
            self._prepared_bytes.pop(dropped, None)
            released = True
        if released:
            _return_freed_memory()

    def release_large(self) -> None:
        """Release the runners of models of at least ``RELEASE_AFTER_MODULE_BYTES`` and hand their
        memory back. The conversion cache on disk keeps their conversions, so a later check of the
        same model loads rather than converts. (A remembered failure is kept: its size counts 0.)"""
        large = [key for key, size in self._prepared_bytes.items() if size and size >= RELEASE_AFTER_MODULE_BYTES]
        for key in large:
            del self._prepared[key]
            del self._prepared_bytes[key]
        if large:
            _return_freed_memory()

    def limit_threads(self, limiter: Callable[[int], object] | None) -> None:
        """Size a framework's process-wide thread pools once per process: torch's for the reference,
        a backend's own (``Backend.limit_threads``; ONNX Runtime sizes each session instead)."""
        if self.threads is None or limiter is None or limiter in self._threads_set:
            return
        self._threads_set.add(limiter)
        limiter(self.threads)

    def output_names(self, key: tuple, make: Any) -> tuple[str, ...]:
        """Output names of a model for given inputs, found by one torch run per session."""
        found = self._output_names.get(key)
        _remember(self._output_names, key, make() if found is None else found, OUTPUT_NAMES_MEMO)
        return self._output_names[key]

    def reference(
        self, key: tuple, feeds: Mapping[str, np.ndarray], compute: Callable[[], dict[str, np.ndarray]], digest: bytes | None = None
    ) -> dict[str, np.ndarray]:
        """torch's outputs for ``feeds`` of the model ``key`` names: kept from an earlier run, or
        ``compute``d now and kept. ``digest``: ``feeds_digest(feeds)``, when the caller has it."""
        entry = (key, feeds_digest(feeds) if digest is None else digest)
        found = self._references.get(entry)
        if found is not None:
            self._references.move_to_end(entry)
            return found
        outputs = compute()
        size = sum(a.nbytes for a in outputs.values())
        if size <= REFERENCE_CACHE_BYTES:
            # a copy (forward may return a tensor it writes later), returned in place of the original
            outputs = self._references[entry] = {k: np.array(a, copy=True) for k, a in outputs.items()}
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
        return int_digest((base, key))


