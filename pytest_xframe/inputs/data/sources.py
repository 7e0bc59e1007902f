"""Where samples come from, read one at a time: a directory of ``.npz`` files (one sample each), one
``.npz`` whose arrays have a leading sample axis, or a Python object with ``len`` and indexing (a
list, a torch ``Dataset``). Nothing reads a whole data set into memory:

* a directory lists its files; a sample is read when it is asked for;
* one ``.npz`` is read row by row: each array's ``.npy`` header inside the zip says its dtype and
  shape, and a row is read at its offset (``numpy.lib.format``'s public header readers);
* any other iterable (a generator, an ``IterableDataset``) is read once and spooled to disk, one
  ``.npz`` per item, then read back like a directory.

A damaged file is a ``SpecError`` naming it. ``samples.py`` binds and checks what a source reads.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...errors import SpecError


class Source(Protocol):
    """Samples by index, as given (a mapping by name, a tuple in input order, a single array);
    ``records`` reads them in order (cheaper than indexing one by one)."""

    description: str

    def __len__(self) -> int: ...

    def where(self, index: int) -> str: ...

    def read(self, index: int) -> Any: ...

    def records(self, stop: int) -> Iterator[Any]: ...


_BAD_FILE = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError)


def _corrupt(path: Path, exc: BaseException, model_name: str) -> SpecError:
    return SpecError(
        f"data file {path} cannot be read as .npz", model=model_name, cause=f"{type(exc).__name__}: {str(exc)[:200]}",
        hint="write samples with numpy.savez / savez_compressed (no pickled objects)",
    )


class NpzDirectory:
    """A directory of ``.npz`` files, one sample each, in file-name order."""

    def __init__(self, path: Path, model_name: str, names: Iterable[str] | None = None) -> None:
        self.path = path
        self.model_name = model_name
        self.files = sorted(p for p in path.iterdir() if p.suffix == ".npz" and p.is_file())
        #: spooled items keep their place in the iterable as their name ("item 3")
        self.names = list(names) if names is not None else None
        if not self.files:
            raise SpecError(f"data directory {path} holds no .npz file", model=model_name,
                            hint="one .npz per sample, its arrays keyed by input name (and 'label')")
        self.description = f"{len(self.files)} .npz files in {path}"

    def __len__(self) -> int:
        return len(self.files)

    def where(self, index: int) -> str:
        return self.names[index] if self.names is not None else repr(self.files[index].name)

    def read(self, index: int) -> dict[str, np.ndarray]:
        path = self.files[index]
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        except _BAD_FILE as exc:
            raise _corrupt(path, exc, self.model_name) from None

    def records(self, stop: int) -> Iterator[dict[str, np.ndarray]]:
        return (self.read(i) for i in range(min(stop, len(self))))


@dataclass(frozen=True)
class _Member:
    """One array of an ``.npz``: its member in the zip, and where its rows start."""

    member: str
    shape: tuple[int, ...]
    dtype: np.dtype
    #: bytes before the first row (the .npy magic and header)
    offset: int
    #: where the member's bytes start in the file when it is stored uncompressed (np.savez), else
    #: None (np.savez_compressed: rows are reached by decompressing the bytes before them, 1 MiB at a time)
    stored_at: int | None = None

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def row(self, handle: Any) -> np.ndarray:
        """The next row from a handle positioned at a row's start."""
        data = handle.read(self.row_bytes)
        if len(data) != self.row_bytes:
            raise EOFError(f"{self.member} ends before its declared shape {list(self.shape)}")
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape[1:]).copy()


def _skip(handle: Any, count: int) -> None:
    """Read past ``count`` bytes of a compressed member, 1 MiB at a time (zipfile's own seek reads
    16 MiB at once, and the decompressor holds several times that)."""
    while count > 0:
        chunk = handle.read(min(count, 2**20))
        if not chunk:
            raise EOFError("the member ends before the row")
        count -= len(chunk)


def _stored_at(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int | None:
    """The file offset of an uncompressed member's data: after its local header (30 bytes, then
    the name and the extra field, whose lengths the header gives at bytes 26 and 28)."""
    if info.compress_type != zipfile.ZIP_STORED or archive.fp is None:
        return None
    archive.fp.seek(info.header_offset)
    header = archive.fp.read(30)
    return info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")


def _member(archive: zipfile.ZipFile, name: str) -> _Member:
    stored_at = _stored_at(archive, archive.getinfo(name))
    with archive.open(name) as handle:
        version = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(handle)
        offset = handle.tell()
    if dtype.hasobject or fortran or not shape:
        what = "of objects" if dtype.hasobject else "in Fortran order" if fortran else "a scalar"
        raise ValueError(f"array {name!r} is {what}: no sample axis to read rows of")
    return _Member(name, tuple(shape), dtype, offset, stored_at)


class NpzStack:
    """One ``.npz`` whose arrays (keyed by input name, and 'label') share a leading sample axis."""

    def __init__(self, path: Path, model_name: str) -> None:
        self.path = path
        self.model_name = model_name
        try:
            with zipfile.ZipFile(path) as archive:
                self.members = {n[: -len(".npy")]: _member(archive, n) for n in archive.namelist() if n.endswith(".npy")}
        except _BAD_FILE as exc:
            raise _corrupt(path, exc, model_name) from None
        counts = {k: m.shape[0] for k, m in self.members.items()}
        if not counts or len(set(counts.values())) != 1:
            raise SpecError(
                f"data file {path} must hold arrays with one leading sample axis",
                model=model_name, cause=f"arrays and their first dim: {counts or 'none'}",
                hint="stack the samples of each input (and 'label') along a first axis of the same length",
            )
        self.count = next(iter(counts.values()))
        self.description = f"{self.count} samples in {path}"

    def __len__(self) -> int:
        return self.count

    def where(self, index: int) -> str:
        return f"{self.path.name}[{index}]"

    def read(self, index: int) -> dict[str, np.ndarray]:
        try:
            with zipfile.ZipFile(self.path) as archive, open(self.path, "rb") as raw:
                values = {}
                for key, m in self.members.items():
                    if m.stored_at is not None:  # straight to the row
                        raw.seek(m.stored_at + m.offset + index * m.row_bytes)
                        values[key] = m.row(raw)
                        continue
                    with archive.open(m.member) as handle:
                        _skip(handle, m.offset + index * m.row_bytes)
                        values[key] = m.row(handle)
        except _BAD_FILE as exc:
            raise _corrupt(self.path, exc, self.model_name) from None
        return values

    def records(self, stop: int) -> Iterator[dict[str, np.ndarray]]:
        """Rows in order through one open handle per array: each is read once, front to back."""
        try:
            with zipfile.ZipFile(self.path) as archive, contextlib.ExitStack() as stack:
                handles = {key: stack.enter_context(archive.open(m.member)) for key, m in self.members.items()}
                for key, m in self.members.items():
                    _skip(handles[key], m.offset)
                for _ in range(min(stop, self.count)):
                    yield {key: m.row(handles[key]) for key, m in self.members.items()}
        except _BAD_FILE as exc:
            raise _corrupt(self.path, exc, self.model_name) from None


class Indexed:
    """A Python object with ``len`` and integer indexing: a list, a tuple, a torch ``Dataset``."""

    def __init__(self, items: Any, model_name: str) -> None:
        self.items = items
        self.model_name = model_name
        self.description = f"{len(items)} items of a {type(items).__name__}"

    def __len__(self) -> int:
        return len(self.items)

    def where(self, index: int) -> str:
        return f"item {index}"

    def read(self, index: int) -> Any:
        return self.items[index]

    def records(self, stop: int) -> Iterator[Any]:
        return (self.read(i) for i in range(min(stop, len(self))))


def indexable(value: Any) -> bool:
    """Whether ``value`` can be read by index (else it is read once and spooled)."""
    return hasattr(value, "__len__") and hasattr(value, "__getitem__") and not isinstance(value, (Mapping, str, bytes))
