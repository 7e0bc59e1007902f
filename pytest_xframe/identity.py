"""What identifies the inputs of a cached result: file digests, our own code's revision, the
installed versions of the stack. Nothing here imports a framework."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path | str) -> str:
    """sha256 of a file, read in chunks (ONNX models and SavedModel variables can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def export_sha256(path: Path | str) -> str:
    """``file_sha256`` of an export file, remembered for the process while its size, mtime and inode
    stay: every backend converting one export keys its cache entry by the same bytes (a 2 GiB model
    was read once per backend)."""
    st = os.stat(path)
    return _remembered_sha256(str(path), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=256)
def _remembered_sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return file_sha256(path)


def source_revision(*paths: Path | str) -> str:
    """A short hash of our own source files (a directory counts as its ``*.py`` files, sorted):
    put in a cache key, a changed converter or runner then rebuilds its entries."""
    h = hashlib.sha256()
    for path in map(Path, paths):
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def dist_version(dist: str) -> str | None:
    """The installed version of a distribution, from its metadata (nothing imported); None if absent."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions(*dists: str) -> dict[str, str]:
    """Installed versions by distribution name, "absent" for one not installed."""
    return {dist: dist_version(dist) or "absent" for dist in dists}
