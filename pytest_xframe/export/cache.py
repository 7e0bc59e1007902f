"""Exports kept on disk: shared by one run's xdist workers, or reused across runs on a vouched key.

Without ``export_key`` an export lives for one run: the model fingerprint cannot see code that
``forward`` calls elsewhere, so a key guessed from the model alone could hand a later run a stale
graph. With ``export_key`` the user vouches for the code (a version string, or files whose
contents are hashed), and the export is stored in the on-disk ``ArtifactCache`` under that key
plus everything else that decides it: the weights, the export options and the stack's versions.

An entry is a directory holding the .onnx, its external data files and ``artifact.json``; a run
gets hard links to them (entries are never rewritten), or copies where links cannot be made.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .cache import ArtifactCache
from .errors import SpecError
from .export import OnnxArtifact
from .guard import safe_repr
from .provenance import file_sha256, source_revision, versions

#: cache kinds: this run's exports (xdist), and exports reused across runs on a vouched key
RUN_KIND = "onnx-export"
KEYED_KIND = "onnx-export-keyed"
#: distributions whose versions decide an export
EXPORT_DISTS = ("torch", "onnx", "onnxscript")


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


def vouched_key(export_key: str | tuple[str, ...], rootdir: Path, model_name: str) -> str:
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


def keyed_entry(vouched: str, weights: str, model: Any, export_options: dict[str, str]) -> dict[str, str]:
    """Everything the keyed entry depends on; ``export_options`` names the exporter, opset,
    input specs (dynamic axes follow from them) and output names."""
    from . import export

    return {
        "export_key": vouched,
        "weights": weights,
        "structure": hashlib.sha256(safe_repr(model).encode()).hexdigest(),
        "classes": ",".join(sorted({f"{type(m).__module__}.{type(m).__qualname__}" for m in model.modules()})),
        "external_data_bytes": str(export.EXTERNAL_DATA_BYTES),
        "xframe_export": source_revision(export.__file__),
        **export_options,
        **versions(*EXPORT_DISTS),
    }


def stored_export(store: ArtifactCache, kind: str, key: dict[str, str], make: Callable[[Path], OnnxArtifact], out: Path) -> tuple[OnnxArtifact, bool]:
    """The export for ``key`` from ``store``, built by ``make`` under the entry's lock when absent;
    its files are placed in ``out`` (converters write beside them). Returns the artifact and
    whether this call exported it. A failed export is not stored."""
    made: list[OnnxArtifact] = []

    def build(files: Path) -> None:
        artifact = make(files)
        made.append(artifact)
        described = {k: v for k, v in asdict(artifact).items() if k != "path"}
        (files / "artifact.json").write_text(json.dumps({**described, "file": artifact.path.name}))

    entry = store.get_or_build(kind, key, build)
    meta = json.loads((entry.path / "artifact.json").read_text())
    name = meta.pop("file")
    described = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.items()}
    artifact = OnnxArtifact(path=out / name, **described)
    place([entry.path / name, *(entry.path / n for n in artifact.external_data)], out)
    return artifact, bool(made)


def place(files: list[Path], out: Path) -> None:
    """Hard-link ``files`` into ``out`` (a copy where the file system cannot link)."""
    out.mkdir(parents=True, exist_ok=True)
    for source in files:
        target = out / source.name
        if target.exists():
            continue
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
