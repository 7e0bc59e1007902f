"""Exports kept on disk: shared by one run's xdist workers, or reused across runs on the user's export key.

Without ``export_key`` an export lives for one run: the model fingerprint cannot see code that
``forward`` calls elsewhere, so a key guessed from the model alone could hand a later run a stale
graph. With ``export_key`` the user vouches for the code (a version string, or files whose
contents are hashed), and the export is stored in the on-disk ``ArtifactCache`` under that key
plus everything else that decides it: the weights, the export options and the stack's versions.

An entry is a directory holding the .onnx, its external data files and ``artifact.json``; a run
gets hard links to them (entries are never rewritten), or copies where links cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..cache import ArtifactCache
from ..identity import source_revision, text_digest, versions
from . import to_onnx
from .to_onnx import OnnxArtifact

#: cache kinds: this run's exports (xdist), and exports reused across runs on the user's export key
RUN_KIND = "onnx-export"
KEYED_KIND = "onnx-export-keyed"
#: distributions whose versions decide an export
EXPORT_DISTS = ("torch", "onnx", "onnxscript")


def export_stack() -> dict[str, str]:
    """What decides an export besides the model and its options: our exporter's code, its
    external-data threshold and the stack's versions (part of every keyed entry)."""
    return {
        "external_data_bytes": str(to_onnx.EXTERNAL_DATA_BYTES),
        "xframe_export": source_revision(to_onnx.__file__),
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


def shared_export(store: ArtifactCache, key: tuple, make: Callable[[Path], OnnxArtifact], out: Path) -> tuple[OnnxArtifact, bool]:
    """Export once per run for all pytest-xdist workers: the first builds the entry under the
    store's lock, the others copy its ONNX file into ``out`` (their converters write beside it).

    As sound as the session's own memo, which has the same key: the model fingerprint cannot see
    code that ``forward`` calls, but that code cannot change between the workers of one run.
    Returns the artifact and whether this worker exported it. A failed export is not stored.
    """
    return stored_export(store, RUN_KIND, {"key": text_digest(key)}, make, out)
