"""Every hash and fingerprint pytest-xframe keys its memos, caches and exports with, in one place.

Of a model: its fingerprint (classes, ``forward``'s code and the plain globals it reads,
structure, weights), its weights digest and a repr that survives a broken ``__repr__``. Of its
inputs: the slots key and one drawn input's digest. Of an export: the user's export key and the
keyed cache entry. Of files and the stack: file digests, our own source revision, installed
versions. Nothing here imports a framework at module level (torch and numpy inside the functions).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SpecError

if TYPE_CHECKING:
    import numpy as np

    from .inputs.spec import InputSlot

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


def safe_repr(model: Any) -> str:
    """``repr(model)``, or its module structure when a ``__repr__`` raises (the user's code)."""
    try:
        return repr(model)
    except Exception:  # noqa: BLE001 - the user's __repr__ may raise anything
        return " ".join(f"{n}:{type(m).__module__}.{type(m).__qualname__}" for n, m in model.named_modules())


def feeds_digest(feeds: Mapping[str, np.ndarray]) -> bytes:
    """Identity of one input: every array's name, dtype, shape and bytes."""
    import numpy as np

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


def model_fingerprint(model: Any, weights: str | None = None) -> str:
    """Identity of a model for this session: classes, code, the plain module globals that code
    names, structure and every weight (``weights``: its ``weights_digest`` when known). Code that ``forward`` calls in other functions, and globals
    those read, are not seen."""
    h = hashlib.sha256()
    for module in model.modules():
        cls = type(module)
        h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        code = getattr(cls.forward, "__code__", None)
        if code is not None:
            _code_and_globals(code, getattr(cls.forward, "__globals__", {}), h)
    h.update(safe_repr(model).encode())
    h.update((weights or weights_digest(model)).encode())
    return h.hexdigest()


def weights_digest(model: Any) -> str:
    """sha256 of every state_dict entry's name, dtype, shape and bytes.

    Reads each tensor's memory in place (a uint8 view handed to the hash): no copy of the
    weights is made, except of a tensor that is not contiguous or not on the CPU.
    """
    import torch

    h = hashlib.sha256()
    for name, tensor in model.state_dict(keep_vars=False).items():
        t = tensor.detach()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if not t.numel():
            continue
        if t.device.type != "cpu" or not t.is_contiguous():
            t = t.cpu().contiguous()  # one tensor at a time
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def resolve_export_key(export_key: str | tuple[str, ...], rootdir: Path, model_name: str) -> str:
    """The user's key as text: ``version:<string>``, or ``files:<sha256>`` of the named files'
    paths and contents (globs allowed, relative to ``rootdir``). A pattern that matches no file
    is a SpecError: a key over nothing would vouch for nothing."""
    if isinstance(export_key, str):
        return "version:" + export_key
    h = hashlib.sha256()
    for pattern in export_key:
        matches = sorted(p for p in glob.glob(str(Path(rootdir) / pattern), recursive=True) if os.path.isfile(p))
        if not matches:
            raise SpecError(
                f"export_key names {pattern!r}, which matches no file under {rootdir}",
                model=model_name,
                hint="export_key takes a version string or paths/globs of the files forward's code lives in, relative to the rootdir",
            )
        for path in matches:
            h.update(f"{os.path.relpath(path, rootdir)}\0{file_sha256(path)}\0".encode())
    return "files:" + h.hexdigest()


def keyed_entry(export_key: str, weights: str, model: Any, export_options: Mapping[str, str]) -> dict[str, str]:
    """Everything the keyed entry depends on; ``export_options`` names the exporter, opset,
    input specs (dynamic axes follow from them), output names and the export stack
    (``export.cache.export_stack``)."""
    return {
        "export_key": export_key,
        "weights": weights,
        "structure": text_digest(safe_repr(model)),
        "classes": ",".join(sorted({f"{type(m).__module__}.{type(m).__qualname__}" for m in model.modules()})),
        **export_options,
    }


def text_digest(value: Any) -> str:
    """sha256 (hex) of ``value``'s repr (a string as itself): keys made of plain values."""
    return hashlib.sha256((value if isinstance(value, str) else repr(value)).encode()).hexdigest()


def slots_key(slots: tuple[InputSlot, ...]) -> tuple:
    """The input slots as they key exports and memos: names, specs, the bytes of given values."""
    return tuple((s.name, s.spec, None if s.value is None else (s.value.dtype.str, s.value.shape, s.value.tobytes())) for s in slots)


def int_digest(value: Any, nbytes: int = 8) -> int:
    """An integer from the first ``nbytes`` of ``value``'s sha256 (seeds derived from keys)."""
    return int.from_bytes(hashlib.sha256(repr(value).encode()).digest()[:nbytes], "big")
