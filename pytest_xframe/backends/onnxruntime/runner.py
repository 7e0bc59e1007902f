"""ONNX Runtime on the CPU provider: the reference implementation of the ONNX model."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..export import OnnxArtifact
from . import Backend, BuildContext, Prepared


@dataclass
class OrtRunner:
    session: Any
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # exporters may drop inputs the graph does not use; feed only what the session declares
        values = self.session.run(list(self.output_names), {n: feeds[n] for n in self.input_names})
        return dict(zip(self.output_names, values))


def make_session(model: str | bytes, providers: tuple[str, ...] = ("CPUExecutionProvider",), threads: int | None = None) -> OrtRunner:
    import onnxruntime as ort

    from ..threads import limit_onnxruntime

    options = ort.SessionOptions()
    limit_onnxruntime(options, threads)
    options.log_severity_level = 3
    # torch and TensorFlow run between our calls: idle ORT threads spinning would steal their CPU
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, sess_options=options, providers=list(providers))
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
)
