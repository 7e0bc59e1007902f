"""On-disk cache of build artifacts (directories), reused across pytest runs and xdist workers.

Exporting a model to ONNX and converting it to a TensorFlow SavedModel takes seconds to
minutes, so the result is kept under pytest's cache dir and found again by a key.

Layout under ``root``::

    <kind>/<digest[:2]>/<digest>/manifest.json   format, kind, key, every file's path/size/sha256
    <kind>/<digest[:2]>/<digest>/files/...       exactly what ``build`` wrote
    <kind>/<digest[:2]>/<digest>.lock            per-entry lock (filelock)
    .tmp/b-<digest>-<pid>-<random>/              a build in progress (never read)
    .tmp/t-<random>/                             a corrupt entry being deleted

Why it is safe:

* An entry appears only by an atomic ``os.rename`` of a finished temp dir (files + manifest), so
  a run killed mid-build leaves only a temp dir, which is never read and is removed later.
* Every read verifies every file against the manifest (size, then sha256 streamed in chunks),
  so a truncated or edited file, a missing manifest, or a torn write after a power loss is
  caught; the entry is then deleted and rebuilt, ``rebuilt_corrupt=True`` is returned and a
  :class:`CacheCorruptWarning` names the entry. No fsync is needed for the same reason.
* Builds take a per-entry :class:`filelock.FileLock`, so on a cold cache two xdist workers build
  an entry once: the second waits, re-verifies under the lock and gets ``hit=True``. Reads of a
  verified entry need no lock because entries are never modified in place, only replaced whole
  under the lock.
* Only files the build wrote plus JSON are stored: nothing is unpickled.

This module imports only the standard library (``filelock`` is imported when a lock is first
taken) so that importing the plugin stays fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import XframeError
from .identity import file_sha256

__all__ = [
    "ArtifactCache",
    "CacheCorruptWarning",
    "CacheLockTimeout",
    "CacheResult",
    "FORMAT_VERSION",
    "cache_key_digest",
    "default_cache_root",
]

#: Bumped when the layout or manifest changes; part of the digest, so old entries are simply
#: never looked up again (``clear()`` or ``--cache-clear`` removes them).
FORMAT_VERSION = 1

MANIFEST_NAME = "manifest.json"
FILES_DIR = "files"
TMP_DIR = ".tmp"
#: A temp dir older than this whose owner is not known to be alive is a leftover of a killed run.
STALE_TMP_AGE_S = 3600.0
DEFAULT_LOCK_TIMEOUT_S = 600.0

_KIND_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_BUILD_PREFIX = "b-"
_TRASH_PREFIX = "t-"


class CacheCorruptWarning(UserWarning):
    """An existing cache entry failed verification and was rebuilt."""


class CacheLockTimeout(XframeError, TimeoutError):
    """Waiting for another process to finish building an entry took longer than the timeout."""


@dataclass(frozen=True)
class CacheResult:
    """Where an artifact is, and how it got there."""

    path: Path
    """Directory holding the built files; treat it as read-only (it is shared by every run)."""
    hit: bool
    """True when read from an existing entry that verified against its manifest."""
    rebuilt_corrupt: bool
    """True when an entry existed but failed verification, and was deleted and rebuilt."""


def cache_key_digest(kind: str, key: Mapping[str, str]) -> str:
    """sha256 (hex) of the canonical JSON of format version, kind and key.

    Canonical means sorted keys and fixed separators, so the key's insertion order does not
    matter. Values must be strings so that the caller decides how e.g. floats are spelled.
    """
    _check_kind(kind)
    _check_key(key)
    payload = {"format": FORMAT_VERSION, "kind": kind, "key": dict(key)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_root(config: Any) -> Path | None:
    """``<rootdir>/.pytest_cache/d/xframe``, via pytest's cache plugin.

    Living in pytest's cache dir means ``--cache-clear`` wipes our entries too (intended).
    Returns None when the cache plugin is disabled (``-p no:cacheprovider``): the user asked for
    no cache files, so pass it straight to ``ArtifactCache(root=...)`` to turn caching off.
    """
    cache = getattr(config, "cache", None)
    if cache is None:
        return None
    return Path(cache.mkdir("xframe"))


def usable_root(root: Path | None) -> Path | None:
    """``root`` if entries can be written there, else None (no cache) with a StorageWarning: a
    file in its place, a read-only or full disk must not fail every conversion of the run."""
    if root is None:
        return None
    from .errors import StorageWarning, describe_exception

    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".xframe-probe-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        warnings.warn(
            StorageWarning(f"xframe cache: {root} cannot be used ({describe_exception(exc)}); this run converts without a cache"),
            stacklevel=2,
        )
        return None
    return Path(root)


@dataclass(frozen=True)
class ArtifactCache:
    """Directories built once per key and reused across runs and processes."""

    root: Path | None
    """Cache directory; None disables caching (every call builds into a fresh caller-owned dir)."""
    scratch: Path | None = None
    """Where the fresh dirs go when ``root`` is None (default: ``tempfile.gettempdir()``)."""
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S
    """Seconds to wait for another process building the same entry before giving up."""

    def get_or_build(self, kind: str, key: Mapping[str, str], build: Callable[[Path], None]) -> CacheResult:
        """Return the verified entry for (kind, key), building it with ``build(tmpdir)`` if needed.

        ``build`` must write its files into the empty directory it is given; that directory is
        then moved into the cache, so the files must not record its absolute path. If ``build``
        raises, nothing is stored and the exception propagates unchanged.
        """
        digest = cache_key_digest(kind, key)
        if self.root is None:
            return self._build_uncached(kind, build)

        root = Path(self.root)
        entry = root / kind / digest[:2] / digest
        # Lock-free fast path: entries are immutable once renamed into place.
        if _verify(entry, kind, key) is None:
            return CacheResult(entry / FILES_DIR, hit=True, rebuilt_corrupt=False)

        entry.parent.mkdir(parents=True, exist_ok=True)
        lock_path = entry.parent / f"{digest}.lock"
        with _locked(lock_path, self.lock_timeout, entry):
            # Someone may have built it while we waited, or the entry may be mid-replacement.
            problem = _verify(entry, kind, key)
            if problem is None:
                return CacheResult(entry / FILES_DIR, hit=True, rebuilt_corrupt=False)
            tmp_root = root / TMP_DIR
            tmp_root.mkdir(parents=True, exist_ok=True)
            _clean_stale_tmp(tmp_root, locked_digest=digest)
            corrupt = os.path.lexists(entry)
            if corrupt:
                _discard(entry, tmp_root)
            _build_into(entry, tmp_root, digest, kind, key, build)
            if corrupt:
                warnings.warn(
                    f"xframe cache: entry {entry} was corrupt ({problem}); rebuilt it",
                    CacheCorruptWarning,
                    stacklevel=2,
                )
            return CacheResult(entry / FILES_DIR, hit=False, rebuilt_corrupt=corrupt)

    def clear(self) -> None:
        """Remove every entry, lock file and temp dir under ``root``; leave anything else.

        Run it when no other process uses the cache: deleting a lock file someone holds breaks
        the mutual exclusion it gives.
        """
        if self.root is None:
            return
        root = Path(self.root)
        if not root.is_dir():
            return
        shutil.rmtree(root / TMP_DIR, ignore_errors=True)
        for kind_dir in _subdirs(root):
            if not _KIND_RE.fullmatch(kind_dir.name):
                continue
            for shard in _subdirs(kind_dir):
                if not re.fullmatch(r"[0-9a-f]{2}", shard.name):
                    continue
                for child in list(shard.iterdir()):
                    name = child.name
                    if _DIGEST_RE.fullmatch(name) and child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    elif name.endswith(".lock") and _DIGEST_RE.fullmatch(name[: -len(".lock")]):
                        _unlink_quiet(child)
                _rmdir_quiet(shard)
            _rmdir_quiet(kind_dir)

    def _build_uncached(self, kind: str, build: Callable[[Path], None]) -> CacheResult:
        parent = Path(self.scratch) if self.scratch is not None else Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix=f"xframe-{kind}-", dir=parent))
        try:
            build(out)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        return CacheResult(out, hit=False, rebuilt_corrupt=False)


# --------------------------------------------------------------------------------------------
# internals


def _check_kind(kind: str) -> None:
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise ValueError(
            f"cache kind must be 1-64 characters of [A-Za-z0-9_.-] starting with a letter or digit, got {kind!r}"
        )


def _check_key(key: Mapping[str, str]) -> None:
    if not isinstance(key, Mapping):
        raise TypeError(f"cache key must be a mapping of str to str, got {type(key).__name__}")
    for k, v in key.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"cache key must map str to str; got {k!r}: {v!r} ({type(v).__name__})")


class _locked:
    """Context manager around filelock.FileLock that turns its Timeout into CacheLockTimeout."""

    def __init__(self, lock_path: Path, timeout: float, entry: Path) -> None:
        import filelock  # lazy: importing filelock costs ~50 ms

        self._lock = filelock.FileLock(str(lock_path), timeout=timeout)
        self._timeout_exc = filelock.Timeout
        self._lock_path = lock_path
        self._entry = entry
        self._timeout = timeout

    def __enter__(self) -> None:
        try:
            self._lock.acquire()
        except self._timeout_exc as exc:
            raise CacheLockTimeout(
                f"timed out after {self._timeout:g} s waiting for cache lock {self._lock_path}",
                cause=f"another process holds it while building {self._entry}",
                hint=(
                    "wait for that process or kill it; if none is running, delete the lock file "
                    "(or run pytest with --cache-clear)"
                ),
            ) from exc

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


def _build_into(
    entry: Path, tmp_root: Path, digest: str, kind: str, key: Mapping[str, str], build: Callable[[Path], None]
) -> None:
    """Run ``build`` in a temp dir inside root, write the manifest, rename it to ``entry``."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{_BUILD_PREFIX}{digest}-{os.getpid()}-", dir=tmp_root))
    try:
        files = tmp / FILES_DIR
        files.mkdir()
        build(files)
        manifest = _make_manifest(files, kind, key, digest)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        os.rename(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _walk(files: Path) -> tuple[list[str], list[str]]:
    """Relative POSIX paths of (dirs, files) under ``files``; symlinks are refused."""
    dirs: list[str] = []
    regular: list[str] = []
    for here, dirnames, filenames in os.walk(files):
        rel_here = Path(here).relative_to(files)
        for name in dirnames + filenames:
            full = Path(here) / name
            rel = (rel_here / name).as_posix()
            if full.is_symlink():
                raise ValueError(f"cache build wrote a symlink {rel!r}; only regular files and dirs can be cached")
            if name in dirnames:
                dirs.append(rel)
            elif full.is_file():
                regular.append(rel)
            else:
                raise ValueError(f"cache build wrote {rel!r}, which is not a regular file")
    return sorted(dirs), sorted(regular)


def _make_manifest(files: Path, kind: str, key: Mapping[str, str], digest: str) -> dict[str, Any]:
    dirs, regular = _walk(files)
    return {
        "format": FORMAT_VERSION,
        "kind": kind,
        "key": dict(key),
        "digest": digest,
        "created": time.time(),
        "dirs": dirs,
        "files": [
            {"path": rel, "size": (files / rel).stat().st_size, "sha256": file_sha256(files / rel)} for rel in regular
        ],
    }


def _verify(entry: Path, kind: str, key: Mapping[str, str]) -> str | None:
    """None if ``entry`` matches its manifest, else why not (``"missing"`` if absent)."""
    if not os.path.lexists(entry):
        return "missing"
    wanted = _read_manifest(entry, kind, key)
    if isinstance(wanted, str):
        return wanted
    want_dirs, want_files = wanted
    files = entry / FILES_DIR
    if not files.is_dir() or files.is_symlink():
        return f"{FILES_DIR}/ missing"
    try:
        dirs, regular = _walk(files)
    except (OSError, ValueError) as exc:
        return f"cannot list files: {exc}"
    if set(dirs) != want_dirs:
        return f"directories differ from manifest: {sorted(set(dirs) ^ want_dirs)[:5]}"
    if set(regular) != set(want_files):
        return f"files differ from manifest: {sorted(set(regular) ^ set(want_files))[:5]}"
    return _check_contents(files, want_files)


def _read_manifest(entry: Path, kind: str, key: Mapping[str, str]) -> tuple[set[str], dict[str, tuple[int, str]]] | str:
    """The directories and files (size, sha256) an entry's manifest lists, or why it cannot be used."""
    try:
        manifest = json.loads((entry / MANIFEST_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no manifest"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"unreadable manifest: {exc}"
    try:
        if manifest["format"] != FORMAT_VERSION:
            return f"manifest format {manifest['format']!r}, expected {FORMAT_VERSION}"
        if manifest["kind"] != kind or manifest["key"] != dict(key):
            return "manifest kind/key does not match the entry's location"
        return set(manifest["dirs"]), {f["path"]: (int(f["size"]), str(f["sha256"])) for f in manifest["files"]}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"malformed manifest: {exc!r}"


def _check_contents(files: Path, want_files: Mapping[str, tuple[int, str]]) -> str | None:
    """Sizes first (cheap, and catches truncation without hashing anything), then hashes."""
    for rel, (size, _) in want_files.items():
        try:
            actual = (files / rel).stat().st_size
        except OSError as exc:
            return f"{rel}: {exc}"
        if actual != size:
            return f"{rel}: size {actual}, manifest says {size}"
    for rel, (_, sha) in want_files.items():
        try:
            actual_sha = file_sha256(files / rel)
        except OSError as exc:
            return f"{rel}: {exc}"
        if actual_sha != sha:
            return f"{rel}: sha256 differs from manifest"
    return None


def _discard(path: Path, tmp_root: Path) -> None:
    """Move ``path`` out of the way atomically, then delete it (a kill leaves only trash)."""
    trash = Path(tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=tmp_root))
    target = trash / "x"
    try:
        os.rename(path, target)
    except OSError:
        # Cross-device or odd file type: delete in place; still under the entry lock.
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    shutil.rmtree(trash, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: exists, owned by someone else
        return True
    return True


def _clean_stale_tmp(tmp_root: Path, locked_digest: str) -> None:
    """Remove leftovers of killed runs: trash, our digest's old builds, and old dead builds.

    A build dir for ``locked_digest`` is always stale (its builder would hold the lock we hold).
    Other build dirs go once older than STALE_TMP_AGE_S and their pid is not alive here (a pid on
    another host may look alive; that only delays the cleanup).
    """
    now = time.time()
    try:
        children = list(tmp_root.iterdir())
    except OSError:
        return
    for child in children:
        name = child.name
        if name.startswith(_TRASH_PREFIX):
            shutil.rmtree(child, ignore_errors=True)
            continue
        if not name.startswith(_BUILD_PREFIX):
            continue
        parts = name[len(_BUILD_PREFIX) :].split("-")
        if parts[0] == locked_digest:
            shutil.rmtree(child, ignore_errors=True)
            continue
        try:
            age = now - child.stat().st_mtime
        except OSError:
            continue
        if age < STALE_TMP_AGE_S:
            continue
        if len(parts) >= 2 and parts[1].isdigit() and _pid_alive(int(parts[1])):
            continue
        shutil.rmtree(child, ignore_errors=True)


def _subdirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def _rmdir_quiet(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _unlink_quiet(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
