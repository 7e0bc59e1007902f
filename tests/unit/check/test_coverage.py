"""Coverage matrix: every model of ``torch_models.CASES`` x backend x exporter, through ``xframe``.

One test per (model, backend, exporter), ids ``[<model>-<backend>-<exporter>]``, so ``-k onnx2tf``
or ``-k "bert_like and tensorflow"`` selects a slice. A backend that converts the torch module
itself (``litert-torch``: torch.export, no ONNX) has one column, exporter ``torch.export``: the
ONNX exporters do not apply to it (its default ONNX export only keys its cache entry).
A combination that genuinely fails today is
marked ``xfail(strict=True, raises=<the pytest_xframe error>, reason=<why>)`` in ``KNOWN_FAILURES``:
a converter that gets fixed turns it into an XPASS(strict) failure, so the table stays true.
One entry depends on the torch version and is not strict (``_OLD_TORCH_RNN``).
Backends whose packages are missing are skipped by the fixture itself.

``benchmarks/coverage_matrix.py`` runs this file and prints the results as a Markdown matrix.

Run time on 2 cores, cold conversion cache (pytest-xframe caches conversions under .pytest_cache):
onnxruntime + tensorflow, both exporters ~2 min (``-k "onnxruntime or tensorflow"``); onnx2tf alone
~1.3 min; tflite alone ~2 min; litert-torch alone ~1 min (one conversion per input shape: its dynamic
dims fail on every model here); the whole file ~3.3 min (exports are shared between backends), and
~3.2 min more for the detector, flow and default-initialisation models (``-k "ssd_detector or
raft_flow or efficientnet_default"``, measured alone on a busy machine).
Inputs are drawn with a fixed ``seed`` so strict xfails cannot flake; ``--xframe-seed`` overrides it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from pytest_xframe import ConversionError, Dim, ExportError, ParityError, VacuousCheckWarning, XframeError, backends
from suite_helpers import skip_unless_backends
from torch_models import CASES

#: about 3 minutes on 2 cores: ``-m "not slow"`` leaves the matrix out of a quick run
pytestmark = pytest.mark.slow

BACKENDS = ("onnxruntime", "tensorflow", "onnx2tf", "tflite", "litert-torch")
EXPORTERS = ("dynamo", "torchscript")
#: the column of a backend that converts the torch module itself, not an ONNX export
DIRECT = "torch.export"
#: kept small: the whole file runs in CI on 2 cores
MAX_EXAMPLES = 3
#: litert-torch converts once per input shape (its dynamic dims fail on all of these models), so
#: each example is a conversion (1-2 s): two, the smallest shape (converted while preparing) and one more
MAX_EXAMPLES_FOR = {"litert-torch": 2}
ATOL, RTOL = 1e-4, 1e-3
#: inputs are drawn deterministically, so a strict xfail that depends on the input cannot flake
SEED = 0

# Reasons read "<short name> -- <details>"; benchmarks/coverage_matrix.py shows the short name.
# A failure at run time (the converted model raises) is a plain XframeError: the test checks the
# exact class, so a known run-time failure that turns into a ParityError still fails the test.
_MHA_FROZEN_SEQ = (
    "TorchScript exporter freezes seq length in nn.MultiheadAttention -- the packed in-projection's "
    "k/v `.view(k.shape[0], bsz * num_heads, head_dim)` is exported as Reshape(shape=Concat(Constant [3], ...)) "
    "(3 = the export example's seq), so every other seq length fails at run time "
    "('/layer/self_attn/Reshape_4': input {2,2,32} cannot be reshaped to {3,8,8}); the dynamo export is fine"
)
_TFLITE_SQUEEZE = (
    "TFLiteConverter rejects Squeeze after a dynamic rank-5 Transpose -- nn.MultiheadAttention's packed "
    "QKV split (unflatten/unsqueeze/transpose/squeeze) becomes tf.Transpose(rank 5, dynamic dims) + "
    "tf.Squeeze(axis=3) in the onnx-tf SavedModel, and the TF 2.21 TFLite converter fails legalizing it: "
    "\"'tfl.squeeze' op attribute 'squeeze_dims' failed to satisfy constraint: 64-bit integer array attribute "
    "whose size is at most 8\" (a static-shape Transpose+Squeeze converts fine)"
)
_TFLITE_TENSORLIST = (
    "TFLite cannot lower the tf.scan RNN with a dynamic batch -- the compat layer's LSTM/GRU handlers "
    "are tf.scan loops; with a dynamic batch 'tf.TensorListReserve' op requires element_shape to be static "
    "during TF Lite transformation pass, and tensor-list ops need SELECT_TF_OPS, which LiteRT lacks"
)
_ONNX2TF_SHAPE_SLICE = (
    "onnx2tf Shape(start=0, end=1) on a rank-3 input returns 2 values -- onnx2tf keeps the rank-3 input "
    "channels-last inside and maps Shape-15's start/end through its NCW->NWC axis conversion "
    "(end 1 -> 2): Shape(x[batch, seq, 16], start=0, end=1) gives [batch, 16] instead of [batch]; "
    "the dynamo export reads the batch size this way"
)
_DATA_DEPENDENT_RETURN = (
    "torch.export refuses the detector's data-dependent early return -- `if not bool(keep.any())` after the score "
    "threshold: 'GuardOnDataDependentSymNode: Could not guard on data-dependent expression Eq(u0, 1)'; the TorchScript "
    "exporter records the branch its example took"
)
KNOWN_FAILURES: dict[tuple[str, str | None, str | None], tuple[type[XframeError], str]] = {
    # --- the TorchScript exporter and nn.MultiheadAttention: every backend runs the frozen shape
    ("transformer_layer", "onnxruntime", "torchscript"): (XframeError, _MHA_FROZEN_SEQ),
    ("transformer_layer", "tensorflow", "torchscript"): (XframeError, _MHA_FROZEN_SEQ),
    ("bert_like", "onnxruntime", "torchscript"): (XframeError, _MHA_FROZEN_SEQ),
    ("bert_like", "tensorflow", "torchscript"): (XframeError, _MHA_FROZEN_SEQ),
    # --- tflite (onnx-tf SavedModel -> TFLiteConverter, builtin ops only)
    ("transformer_layer", "tflite", None): (ConversionError, _TFLITE_SQUEEZE),
    ("bert_like", "tflite", None): (ConversionError, _TFLITE_SQUEEZE),
    ("lstm_2l_bi", "tflite", None): (ConversionError, _TFLITE_TENSORLIST),
    ("gru", "tflite", None): (ConversionError, _TFLITE_TENSORLIST),
    ("dynamic_shapes", "tflite", "torchscript"): (
        ConversionError,
        "TFLite has no float64 RealDiv -- onnx-tf converts the int64 Div of the shape arithmetic `d // 4` "
        "(TorchScript export; dynamo folds it) with tf.math.truediv, i.e. tf.RealDiv on float64 then a cast "
        "back, and RealDiv(f64) is not a TFLite builtin ('neither a custom op nor a flex op')",
    ),
    # --- onnx2tf 1.29.24
    ("transformer_layer", "onnx2tf", "dynamo"): (
        ConversionError,
        "onnx2tf Shape(start, end) bug -> Reshape fails -- " + _ONNX2TF_SHAPE_SLICE.split(" -- ", 1)[1]
        + "; batch*heads is then 2 values and Reshape node_Reshape_18 (to [1]) fails: "
        "'Cannot reshape a tensor with 2 elements to shape [1]'",
    ),
    ("dynamic_shapes", "onnx2tf", "dynamo"): (
        ConversionError,
        "onnx2tf Shape(start, end) bug -> rank-5 reshape -- " + _ONNX2TF_SHAPE_SLICE.split(" -- ", 1)[1]
        + "; the reshape target (b, s, 4, d // 4) gets 5 values and Transpose node_transpose fails: "
        "'Dimension must be 5 but is 4'",
    ),
    ("lstm_2l_bi", "onnx2tf", "dynamo"): (
        ConversionError,
        "onnx2tf Shape(start, end) bug -> bad LSTM initial_h -- " + _ONNX2TF_SHAPE_SLICE.split(" -- ", 1)[1]
        + "; initial_h = Expand(zeros, Concat(2, Shape(x, 0, 1), 16)) gets rank 4, and the Keras RNN rejects it: "
        "'initial_state ... not compatible with cell.state_size [16, 16]'",
    ),
    ("gru", "onnx2tf", "dynamo"): (
        ConversionError,
        "onnx2tf Shape(start, end) bug -> bad GRU initial_h -- " + _ONNX2TF_SHAPE_SLICE.split(" -- ", 1)[1]
        + "; initial_h = Expand(zeros, Concat(1, Shape(x, 0, 1), 16)) gets rank 4, and the Keras RNN rejects it: "
        "'initial_state ... not compatible with cell.state_size [16]'",
    ),
    ("dynamic_shapes", "onnx2tf", "torchscript"): (
        XframeError,
        "onnx2tf Shape of a rank-3 input is channels-last -- Shape(x[batch, seq, 16]) returns [batch, 16, seq], "
        "so the `b, s, d = x.shape` arithmetic swaps seq and features and the converted model fails at run "
        "time on every input, the export shape included: 'Input to reshape is a tensor with 96 values, but "
        "the requested shape has 0' (d // 4 computed from seq 3)",
    ),
    ("gru", "onnx2tf", "torchscript"): (
        ParityError,
        "onnx2tf GRU runs the recurrence over the batch axis -- on the TorchScript export (Transpose to "
        "seq-major, GRU layout=0, linear_before_reset=1) the converted GRU treats seq as batch and batch as "
        "time: its outputs equal torch's GRU on x.transpose(0, 1) (to 6e-8); with batch 1 each step "
        "restarts from h0 (max abs 0.079), with batch != seq it fails on 'Incompatible shapes [4,16] vs. [2,16]'",
    ),
    ("lstm_2l_bi", "onnx2tf", "torchscript"): (
        ConversionError,
        "onnx2tf bidirectional LSTM needs a static input size -- layer 2's X comes from a Reshape with a "
        "run-time shape (dynamic batch/seq), so onnx2tf's `input_size = X.shape[-1]` is unknown and reshaping "
        "W to [4, hidden, input_size] fails: 'Can't convert Python sequence with mixed types to Tensor'",
    ),
    ("transformer_layer", "onnx2tf", "torchscript"): (
        XframeError,
        "onnx2tf mis-converts the TorchScript MultiheadAttention graph -- the converted model fails at run "
        "time on every input, the export shape included: 'Incompatible shapes: [4] vs. [3,4,2,8]' at "
        "tf.math.multiply (and the exporter froze seq, see the onnxruntime column)",
    ),
    ("bert_like", "onnx2tf", "dynamo"): (
        ConversionError,
        "onnx2tf loses the rank of a run-time Reshape -- MultiheadAttention's head merge reshapes to "
        "Concat(Shape/Slice of view_9) (node_Reshape_143); onnx2tf gives the result unknown rank and the "
        "next Transpose (node_Transpose_144) fails: 'Cannot take the length of shape with unknown rank'",
    ),
    # --- the SSD-style detector: post-processing with a data-dependent early return
    ("ssd_detector", None, "dynamo"): (ExportError, _DATA_DEPENDENT_RETURN),
    ("ssd_detector", "litert-torch", None): (ConversionError, _DATA_DEPENDENT_RETURN),
    ("ssd_detector", "onnx2tf", "torchscript"): (
        ConversionError,
        "onnx2tf pads the channel axis -- the image padded to the stride, Pad(pads=[0, 0, 0, 0, 0, 0, 2, 2]) on NCHW, "
        "lands on the channels of onnx2tf's NHWC tensor (3 become 5), and the first Conv fails: "
        "'Depth of input (5) is not a multiple of input depth of filter (3)'",
    ),
    # --- the RAFT-like flow model on onnx2tf 1.29.24
    ("raft_flow", "onnx2tf", "dynamo"): (
        ConversionError,
        "onnx2tf gives the flow's permute a rank-6 tensor -- Transpose node_permute (flow.permute(0, 2, 3, 1) of a "
        "rank-4 flow) fails in onnx2tf: 'Dimension must be 6 but is 4'",
    ),
    ("raft_flow", "onnx2tf", "torchscript"): (
        ConversionError,
        "onnx2tf InstanceNormalization with a Constant scale -- onnx2tf hands the Constant node's output (an "
        "onnx_graphsurgeon Variable) to TensorFlow as the scale: 'Attempt to convert a value (Variable "
        "(/encoder/net/net.1/Constant_output_0): (shape=[16], dtype=float32)) with an unsupported type'",
    ),
    ("bert_like", "onnx2tf", "torchscript"): (
        ConversionError,
        "onnx2tf Expand fails on a constant-folded shape -- the key-padding-mask broadcast "
        "'/layer/attn/Expand' has a shape that onnx2tf folds to the numpy array [1 1 1 4]; its strict-mode "
        "check builds a Keras Model with it as an output: 'Output tensors of a Functional model must be the "
        "output of a TensorFlow `Layer`'",
    ),
}


#: measured with torch 2.11 (Python 3.12, a GPU machine's image): torch.export specializes the
#: sequence dim of nn.LSTM / nn.GRU, so the dynamo export refuses the dynamic one before any
#: backend runs. torch 2.13 exports them; 2.12 is not measured, hence not strict.
_OLD_TORCH_RNN = (
    "torch < 2.13 export specializes the RNN seq dim -- torch.export: 'Received user-specified dim hint "
    "Dim.DYNAMIC(min=None, max=None), but tracing inferred a static shape of 3 for dimension inputs['x'].shape[1]'"
)
_OLD_TORCH = torch.__version__ < (2, 13)


def _known_failure(model: str, backend: str, exporter: str) -> tuple[type[XframeError], str, bool] | None:
    """(the error it raises, why, strict) for a combination that fails on this stack."""
    if _OLD_TORCH and exporter == "dynamo" and model in ("lstm_2l_bi", "gru"):
        return ExportError, _OLD_TORCH_RNN, False
    for key in ((model, backend, exporter), (model, backend, None), (model, None, exporter), (model, None, None)):
        if key in KNOWN_FAILURES:
            return (*KNOWN_FAILURES[key], True)
    return None


@contextlib.contextmanager
def _without_shrinking() -> Iterator[None]:
    """Hypothesis settings without the shrink and explain phases, for known failures only.

    Shrinking a failure that is already understood costs 15-50 s per test (every shrink step runs
    torch and the backend, and a backend that raises is slow to raise); unexpected failures are
    still shrunk to a minimal input. The previous profile is loaded again afterwards.
    """
    from hypothesis import Phase, settings

    previous = settings.get_current_profile_name()
    name = f"xframe-coverage-no-shrink-{previous}"
    phases = [p for p in settings.get_profile(previous).phases if p not in (Phase.shrink, Phase.explain)]
    settings.register_profile(name, parent=settings.get_profile(previous), phases=phases)
    settings.load_profile(name)
    try:
        yield
    finally:
        settings.load_profile(previous)


def exporters(backend: str) -> tuple[str, ...]:
    """The columns of ``backend``: both ONNX exporters, or ``DIRECT`` for a torch-source backend."""
    return (DIRECT,) if backends.get(backend).source == "torch" else EXPORTERS


def _params() -> list:
    params = []
    for model in CASES:
        for backend in BACKENDS:
            for exporter in exporters(backend):
                known = _known_failure(model, backend, exporter)
                marks = [pytest.mark.xfail(strict=known[2], raises=known[0], reason=known[1])] if known else []
                params.append(pytest.param(model, backend, exporter, id=f"{model}-{backend}-{exporter}", marks=marks))
    return params


@pytest.mark.parametrize(("model_name", "backend", "exporter"), _params())
def test_coverage(xframe, model_name: str, backend: str, exporter: str) -> None:
    if exporter == "dynamo":  # the older stack (onnx < 1.17) has no onnxscript
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript (extra 'dynamo')")
    case = CASES[model_name]
    known = _known_failure(model_name, backend, exporter)
    # DIRECT: the backend's own export plan; the ONNX model only keys its cache entry
    chosen = {} if exporter == DIRECT else {"exporter": exporter}
    # a model at its default initialisation: its outputs lie within the tolerance of zero
    vacuous = pytest.warns(VacuousCheckWarning, match="a backend returning zeros would pass") if case.vacuous else contextlib.nullcontext()
    with _without_shrinking() if known else contextlib.nullcontext(), vacuous:
        try:
            report = xframe.check(
                case.build(),
                case.inputs,
                backends=[backend],
                **chosen,
                max_examples=MAX_EXAMPLES_FOR.get(backend, MAX_EXAMPLES),
                atol=ATOL,
                rtol=RTOL,
                seed=SEED,
                name=model_name,
            )
        except XframeError as exc:
            if known and type(exc) is not known[0]:  # xfail(raises=) would accept any subclass
                pytest.fail(f"expected {known[0].__name__} ({known[1].split(' -- ')[0]}), got {type(exc).__name__}: {exc}")
            raise
    result = report[backend]
    assert result.verdict == "passed"
    assert result.examples >= 1
    assert result.onnx.startswith(exporter), f"{backend} ran {result.onnx}, not the {exporter} export"


# ------------------------------------------------------------------ quantized targets, judged over data
#: the reduced-precision and quantized targets, each on its own export plan (one column each)
QUANTIZED = ("tflite-fp16", "tflite-int8", "tflite-int8-full", "onnxruntime-int8")
#: samples per model: drawn once from the spec with numpy (``DATA_SEED``), each Dim anywhere in its
#: range, so the figures never depend on what hypothesis draws; the int8 targets calibrate on them
DATA_SAMPLES, DATA_SEED = 16, 0
#: what the tflite route cannot convert, on every TFLite target alike
_TFLITE_ROUTE = {m: why for (m, b, e), (_, why) in KNOWN_FAILURES.items() if b == "tflite" and e is None}
#: (model, target) -> (error, why) that fails today over the data, with the default thresholds over it
QUANTIZED_FAILURES: dict[tuple[str, str], tuple[type[XframeError], str]] = {
    **{(m, t): (ConversionError, why) for m, why in _TFLITE_ROUTE.items() for t in QUANTIZED if t.startswith("tflite")},
    ("bert_like", "onnxruntime-int8"): (
        ParityError,
        "near-tied logits of random weights flip under int8 -- the classifier head's top-1 agrees on 30 of 32 rows (93.8%, the "
        "default over data asks 95%); its SNR over the data passes",
    ),
    ("embedding", "tflite-int8-full"): (
        ParityError,
        "a mean over a dynamic sequence, calibrated at one length -- TFLite's calibrator sizes the inputs once, so it calibrates on "
        "the data's samples of the first one's length; the mean's int8 range then misfits the other lengths: 95% of the samples "
        "reach only 8.7 dB of SNR (the default over data asks 10)",
    ),
    **{("ssd_detector", t): (
        ParityError,
        "its labels (int64, the argmax of random-weight class scores) compare exactly, and int8 flips 2 of the first sample's 8; "
        "a detector's outputs are judged as sets with detections= (docs/data.md), which this matrix does not pass",
    ) for t in QUANTIZED if "int8" in t},
    ("efficientnet_default", "tflite-int8-full"): (
        ParityError,
        "outputs at the default initialisation's scale (RMS ~1e-6, Case.vacuous): near-tied logits flip, top-1 agrees on 28 of "
        "31 rows (90.3%, the default over data asks 95%); its SNR over the data (median 24 dB) passes",
    ),
    ("dynamic_shapes", "tflite-int8-full"): (
        ParityError,
        "a sum over a dynamic sequence, calibrated at one length -- as for embedding: the median SNR over the data is 15 dB "
        "(the default over data asks 20)",
    ),
}


def data_for(model_name: str) -> list[dict]:
    """The model's data: ``DATA_SAMPLES`` inputs drawn from its spec (as ``benchmarks/quantized_matrix.py`` draws)."""
    import numpy as np

    from pytest_xframe.inputs.spec import bind_inputs

    case = CASES[model_name]
    slots = bind_inputs(case.build(), case.inputs, model_name)
    rng = np.random.default_rng(DATA_SEED)
    samples = []
    for _ in range(DATA_SAMPLES):
        sizes: dict[str, int] = {}
        sample = {}
        for slot in slots:
            if slot.spec is None:
                continue
            shape = tuple(sizes.setdefault(d.name, int(rng.integers(d.min, d.max + 1))) if isinstance(d, Dim) else d for d in slot.spec.shape)
            lo, hi = slot.spec.bounds
            dtype = np.dtype(slot.spec.dtype)
            integer = dtype.kind in "iub"
            sample[slot.name] = (rng.integers(int(lo), int(hi), size=shape, endpoint=True) if integer else rng.uniform(lo, hi, size=shape)).astype(dtype)
        samples.append(sample)
    return samples


def _quantized_params() -> list:
    params = []
    for model in CASES:
        for target in QUANTIZED:
            known = QUANTIZED_FAILURES.get((model, target))
            marks = [pytest.mark.xfail(strict=True, raises=known[0], reason=known[1])] if known else []
            params.append(pytest.param(model, target, id=f"{model}-{target}-data", marks=marks))
    return params


@pytest.mark.parametrize(("model_name", "backend"), _quantized_params())
def test_quantized_coverage_over_data(xframe, model_name: str, backend: str) -> None:
    """Each target judged by its precision's defaults over the model's data (no atol/rtol)."""
    skip_unless_backends(backend)
    known = QUANTIZED_FAILURES.get((model_name, backend))
    case = CASES[model_name]
    with _without_shrinking() if known else contextlib.nullcontext():
        try:
            report = xframe.check(case.build(), case.inputs, backends=[backend], data=data_for(model_name), max_examples=MAX_EXAMPLES, seed=SEED,
                                  name=model_name)
        except XframeError as exc:
            if known and type(exc) is not known[0]:
                pytest.fail(f"expected {known[0].__name__} ({known[1].split(' -- ')[0]}), got {type(exc).__name__}: {exc}")
            raise
    result = report[backend]
    assert result.verdict == "passed"
    assert result.examples == DATA_SAMPLES + MAX_EXAMPLES
    assert set(result.over_data) == set(result.metrics), "every output judged over the data"
