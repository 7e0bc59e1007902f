"""Artifacts kept for a failing case: enough to replay it without pytest or torch.

Layout, one directory per test and backend::

    <artifacts-dir>/<safe test id>/<backend>/
        model.onnx          the ONNX model this backend ran
        model.onnx.data     its weights, when they are external data (a model near 2 GiB)
        converted/          the converted model (SavedModel), when there is one
        inputs.npz          the minimal failing input
        reference.npz       torch's outputs for it
        backend.npz         the backend's outputs for it
        case.json           what ran, tolerances, the comparison figures, and the sha256 of
                            every file above (replay refuses a file replaced since)

An export or conversion failure keeps ``error.txt`` (the message and the full traceback) and the
ONNX model; a converted model's crash at run time keeps ``error.txt``, the ONNX model, the input it
crashed on (``inputs.npz``) and ``converted/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import unicodedata
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: the case.json this version writes: 2 adds ``sha256`` (every kept file's hash)
CASE_VERSION = 2
#: the case.json versions replay reads (1: kept before the hashes, replayed unverified)
READABLE_CASE_VERSIONS = (1, 2)


def safe_name(text: str, limit: int = 80) -> str:
    """A file name for any test id: ASCII, no separators, no dot-only names, bounded, unique.

    A short hash of the original keeps ids that differ only in stripped characters apart.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", ascii_text).strip("._-") or "case"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[:limit]}-{digest}"


def shown(path: Path) -> str:
    """A path for messages: relative to the working directory when inside it (shorter, and the
    replay command then works as printed from where pytest ran), else absolute."""
    path = Path(path).resolve()
    here = Path.cwd().resolve()
    return str(path.relative_to(here)) if here in path.parents else str(path)


def case_dir(root: Path, test_id: str, backend: str) -> Path:
    """Directory for one test x backend, guaranteed to lie inside ``root``."""
    root = root.resolve()
    path = (root / safe_name(test_id) / safe_name(backend, limit=40)).resolve()
    if root not in path.parents:
        raise ValueError(f"refusing artifact path outside {root}: {path}")
    return path


def save_case(
    directory: Path,
    *,
    case: Mapping[str, Any],
    inputs: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    backend_outputs: Mapping[str, np.ndarray],
    onnx_path: Path | None,
    converted_path: Path | None,
    external_data: tuple[Path, ...] = (),
) -> Path:
    """Write one case; an older case in the same directory is replaced."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    np.savez(directory / "inputs.npz", **inputs)
    np.savez(directory / "reference.npz", **reference)
    np.savez(directory / "backend.npz", **backend_outputs)
    if onnx_path is not None:
        keep_onnx(onnx_path, external_data, directory)
    if converted_path is not None and converted_path.exists():
        shutil.copytree(converted_path, directory / "converted")
    hashes = kept_hashes(directory)
    (directory / "case.json").write_text(json.dumps({"version": CASE_VERSION, **case, "sha256": hashes}, indent=2, default=str))
    return directory


def kept_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file of a case (path relative to it, with '/'), case.json aside."""
    from ..identity import file_sha256

    return {p.relative_to(directory).as_posix(): file_sha256(p) for p in sorted(directory.rglob("*")) if p.is_file() and p.name != "case.json"}


def altered_files(directory: Path, hashes: Mapping[str, str]) -> list[str]:
    """The kept files that are missing or whose bytes differ from ``hashes`` (``kept_hashes`` at keeping time)."""
    from ..identity import file_sha256

    return [name for name, digest in hashes.items() if not (directory / name).is_file() or file_sha256(directory / name) != digest]


def save_error(
    directory: Path, *, text: str, onnx_path: Path | None, external_data: tuple[Path, ...] = (),
    inputs: Mapping[str, np.ndarray] | None = None, converted_path: Path | None = None,
) -> Path:
    """Keep an export/conversion failure or a run-time crash: the message with the full traceback,
    the ONNX model, and for a crash the input (``inputs.npz``) and the converted model (``converted/``)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / "error.txt").write_text(text)
    if onnx_path is not None and Path(onnx_path).exists():
        keep_onnx(onnx_path, external_data, directory)
    if inputs is not None:
        np.savez(directory / "inputs.npz", **inputs)
    if converted_path is not None and converted_path.exists():
        shutil.copytree(converted_path, directory / "converted")
    return directory


def keep_onnx(onnx_path: Path, external_data: tuple[Path, ...], directory: Path) -> None:
    """The ONNX model as ``model.onnx`` and its external data files under their own names (the
    model refers to them relative to itself, so ONNX Runtime finds them there). Hard links where
    the file system allows: the weights may be gigabytes, and the source is never rewritten."""
    for source, name in ((Path(onnx_path), "model.onnx"), *((Path(p), Path(p).name) for p in external_data)):
        try:
            os.link(source, directory / name)
        except OSError:
            shutil.copy2(source, directory / name)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def keep(save: Callable[..., Path], directory: Path, **kwargs: Any) -> Path | None:
    """``save(directory, **kwargs)``, or a StorageWarning and None when the artifacts directory
    cannot be written (read-only, a file, a full disk): the check's own result must stand."""
    from ..errors import StorageWarning, describe_exception

    try:
        return save(directory, **kwargs)
    except OSError as exc:
        warnings.warn(
            StorageWarning(f"xframe: could not keep artifacts in {directory} ({describe_exception(exc)}); the check's result stands"),
            stacklevel=3,
        )
        return None
