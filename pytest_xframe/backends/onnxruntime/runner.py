"""ONNX Runtime on the CPU provider: the ONNX model as a deployment on ONNX Runtime runs it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...export.to_onnx import OnnxArtifact
from .. import Backend, BuildContext, Prepared


@dataclass
class OrtRunner:
    session: Any
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # exporters may drop inputs the graph does not use; feed only what the session declares
        values = self.session.run(list(self.output_names), {n: feeds[n] for n in self.input_names})
        return dict(zip(self.output_names, values))


def make_session(model: str | bytes, threads: int | None = None) -> OrtRunner:
    """The backend's runner: an optimized CPU session, as a deployment would run the model."""
    from ...export.onnx_graph import ort_session

    session = ort_session(model, threads=threads)
    return OrtRunner(
        session,
        tuple(i.name for i in session.get_inputs()),
        tuple(o.name for o in session.get_outputs()),
    )


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    start = time.perf_counter()
    runner = make_session(str(artifact.path), threads=ctx.threads)
    return Prepared(runner, convert_seconds=0.0, load_seconds=time.perf_counter() - start)


def load_case(case_dir: Path, case: Mapping[str, Any]) -> OrtRunner:
    """A saved failing case's runner: its ONNX model in a fresh session."""
    return make_session(str(case_dir / "model.onnx"))


BACKEND = Backend(
    name="onnxruntime",
    prepare=prepare,
    modules=("onnxruntime",),
    extra="onnxruntime",
    exports=(("dynamo", None), ("torchscript", 17)),
    framework=("onnxruntime",),
    load_case=load_case,
    distributions=("onnxruntime",),
)
