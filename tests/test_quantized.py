"""Reduced-precision and quantized targets (tflite-fp16, tflite-int8, tflite-int8-full,
onnxruntime-int8): real conversions, real interpreters, through pytester where it is the plugin's
behaviour. Until the default policy per precision lands, the checks set a loose atol/rtol.
"""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import INNER_CONFTEST

from pytest_xframe import backends
from pytest_xframe.errors import SpecError

TARGETS = ("tflite-fp16", "tflite-int8", "tflite-int8-full", "onnxruntime-int8")

#: a conv net whose weights are big enough to be quantized (TFLite's dynamic-range quantizer
#: leaves tensors under 1024 elements in float), beside the shared tiny models in the inner conftest
QNET_CONFTEST = INNER_CONFTEST + textwrap.dedent(
    """

    class QNet(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU())
            self.head = nn.Linear(16 * 4 * 4, 8)

        def forward(self, x):
            return self.head(self.features(x).flatten(1))
    """
)
QNET = textwrap.dedent(
    """
    import numpy as np
    import pytest
    import torch

    from conftest import QNet
    from pytest_xframe import Dim, TensorSpec

    SPEC = [TensorSpec((Dim("batch", 1, 2), 3, 6, 6))]
    # torchscript, as in test_caching: after one in-process run the dynamo exporter fails in the next.
    # seed: these tests assert passes and failures of int8 targets, which judge the worst input
    # hypothesis finds; on QNet's random weights a search over the box can find corner inputs that
    # drive activations past the calibrated range (14.1 dB at seed 1: docs/policies.md, what the defaults
    # promise). Pinned, the inputs are known: at seed 0 the worst SNR is 35.5 dB (int8 targets, both
    # calibration seeds used here) and 63.3 dB (fp16), 20 dB clear of the 15 and 40 dB floors.
    PIN = {"exporter": "torchscript", "opset": 17, "seed": 0}
    """
)


@pytest.fixture
def q_pytester(xf_pytester: pytest.Pytester) -> pytest.Pytester:
    xf_pytester.makeconftest(QNET_CONFTEST)
    return xf_pytester


def _skip_unless(*names: str) -> None:
    for name in names:
        reason = backends.get(name).missing()
        if reason:
            pytest.skip(reason)


def _checks(pytester: pytest.Pytester, name: str = "report.json") -> dict[str, dict]:
    return {c["backend"]: c for c in json.loads((pytester.path / name).read_text())["checks"]}


def test_each_target_passes_records_its_calibration_and_is_cached(q_pytester: pytest.Pytester) -> None:
    xf_pytester = q_pytester
    _skip_unless(*TARGETS)
    # no atol/rtol: each target is judged by its precision's default policy (metrics, not allclose)
    body = QNET + textwrap.dedent(
        f"""
        @pytest.mark.xframe_parity(backends={list(TARGETS)!r}, max_examples=3, calibration_samples=8, calibration_seed=0, **PIN)
        def test_qnet(xframe):
            xframe.check(QNet().eval(), SPEC)
        """
    )
    xf_pytester.makepyfile(test_q=body)
    args = ("--xframe-cache-dir=qcache", "--xframe-report=report.json")
    xf_pytester.runpytest(*args).assert_outcomes(passed=4)
    first = _checks(xf_pytester)
    for target in TARGETS:
        assert first[target]["verdict"] == "passed" and not first[target]["cache_hit"], target
        assert first[target]["max_abs"] > 1e-6, f"{target} ran the model at full precision"
    for target in ("tflite-int8-full", "onnxruntime-int8"):
        assert first[target]["calibration"]["source"] == "spec"
        assert first[target]["calibration"]["samples"] == 8 and first[target]["calibration"]["seed"] == 0
    assert first["tflite-fp16"]["calibration"] is None and first["tflite-int8"]["calibration"] is None
    assert "int8 static" in first["onnxruntime-int8"]["onnx"]  # a graph with Conv: calibrated QDQ

    # the same run again: every conversion read from the cache, the same calibration samples
    xf_pytester.runpytest(*args).assert_outcomes(passed=4)
    again = _checks(xf_pytester)
    assert all(again[t]["cache_hit"] for t in TARGETS)
    assert again["tflite-int8-full"]["calibration"] == first["tflite-int8-full"]["calibration"]

    # another calibration seed: other samples, so new calibrated conversions; the others stay cached
    xf_pytester.makepyfile(test_q=body.replace("calibration_seed=0", "calibration_seed=1"))
    xf_pytester.runpytest(*args).assert_outcomes(passed=4)
    seeded = _checks(xf_pytester)
    for target in ("tflite-int8-full", "onnxruntime-int8"):
        assert not seeded[target]["cache_hit"] and seeded[target]["calibration"]["seed"] == 1
        assert seeded[target]["calibration"]["digest"] != first[target]["calibration"]["digest"]
    assert seeded["tflite-fp16"]["cache_hit"] and seeded["tflite-int8"]["cache_hit"]


def test_user_calibration_samples_in_input_order_and_by_name(q_pytester: pytest.Pytester) -> None:
    xf_pytester = q_pytester
    _skip_unless("tflite-int8-full")
    xf_pytester.makepyfile(
        QNET
        + textwrap.dedent(
            """
            rng = np.random.default_rng(3)
            SAMPLES = [rng.uniform(-1, 1, (2, 3, 6, 6)) for _ in range(4)]  # float64 data for a float32 input


            def test_tuples(xframe):
                xframe.check(QNet().eval(), SPEC, backends=["tflite-int8-full"], atol=0.1, rtol=0.1, max_examples=3,
                             calibration=[(s,) for s in SAMPLES], **PIN)


            def test_dicts(xframe):
                xframe.check(QNet().eval(), SPEC, backends=["tflite-int8-full"], atol=0.1, rtol=0.1, max_examples=3,
                             calibration=({"x": torch.from_numpy(s).float()} for s in SAMPLES), **PIN)
            """
        )
    )
    xf_pytester.runpytest("--xframe-report=report.json").assert_outcomes(passed=2)
    records = json.loads((xf_pytester.path / "report.json").read_text())["checks"]
    described = [r["calibration"] for r in records]
    assert [d["source"] for d in described] == ["user", "user"] and [d["samples"] for d in described] == [4, 4]
    assert described[0]["seed"] is None
    assert described[0]["digest"] == described[1]["digest"], "the same samples, given two ways"


def test_bad_calibration_sample_is_a_spec_error(q_pytester: pytest.Pytester) -> None:
    xf_pytester = q_pytester
    _skip_unless("tflite-int8-full")
    xf_pytester.makepyfile(
        QNET
        + textwrap.dedent(
            """
            def test_bad(xframe):
                good = np.zeros((1, 3, 6, 6), np.float32)
                xframe.check(QNet().eval(), SPEC, backends=["tflite-int8-full"], calibration=[good, np.zeros((1, 3, 5, 5))], **PIN)


            def test_two_shapes(xframe):
                samples = [np.zeros((1, 3, 6, 6), np.float32), np.zeros((2, 3, 6, 6), np.float32)]
                xframe.check(QNet().eval(), SPEC, backends=["tflite-int8-full"], calibration=samples, **PIN)
            """
        )
    )
    result = xf_pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*pytest_xframe.SpecError*", "*pytest_xframe.SpecError*"])
    text = result.stdout.str()
    assert "calibration sample 1, input 'x' has shape [1, 3, 5, 5], the input is declared float32[batch[1..2], 3, 6, 6] (model QNet)" in text
    assert "tflite-int8-full calibrates on one input shape, and the calibration samples have 2 (model QNet, backend tflite-int8-full)" in text
    assert "Traceback" not in result.stdout.str()


def _slots():
    from pytest_xframe import Dim, TensorSpec
    from pytest_xframe.spec import InputSlot

    return (
        InputSlot("ids", TensorSpec((Dim("seq", 2, 4),), "int64", low=0, high=9)),
        InputSlot("x", TensorSpec((2, 3))),
    )


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([{"ids": np.arange(3), "x": np.zeros((2, 3)), "y": 1}], "calibration sample 0 names input(s) 'y' the model does not take"),
        ([(np.arange(3),)], "calibration sample 0 has 1 value(s), the model takes 2 input(s)"),
        ([{"x": np.zeros((2, 3))}], "calibration sample 0 lacks input(s) 'ids'"),
        ([(np.zeros(3), np.zeros((2, 3)))], "calibration sample 0, input 'ids' has dtype float64, the input is int64"),
        ([(np.arange(5), np.zeros((2, 3)))], "calibration sample 0, input 'ids' has shape [5], the input is declared int64[seq[2..4]]"),
        ([(np.arange(3), "abc")], "calibration sample 0, input 'x' is a str, not a numeric array"),
        ([], "calibration= holds no samples"),
    ],
)
def test_user_samples_are_checked_against_the_spec(samples: list, message: str) -> None:
    from pytest_xframe.calibration import from_user

    with pytest.raises(SpecError) as info:
        from_user(samples, _slots(), "M")
    assert message in str(info.value) and "M" in str(info.value)


def test_spec_samples_follow_their_own_seed() -> None:
    from pytest_xframe.calibration import from_spec

    a, b, c = from_spec(_slots(), 5, 0), from_spec(_slots(), 5, 0), from_spec(_slots(), 5, 1)
    assert a.digest == b.digest != c.digest
    assert len(a.samples) == 5 and a.samples[0]["ids"].shape == (4,) and a.samples[0]["x"].dtype == np.float32
    assert all(0 <= s["ids"].min() and s["ids"].max() <= 9 for s in a.samples)


@pytest.mark.parametrize("where", ["marker", "check"])
def test_calibration_options_are_validated(xf_pytester: pytest.Pytester, where: str) -> None:
    call = "xframe.check(None, [TensorSpec((2, 6))]{})"  # options are checked before the model
    if where == "marker":
        body = "@pytest.mark.xframe_parity(calibration_samples=0)\ndef test_m(xframe):\n    " + call.format("")
    else:
        body = "def test_m(xframe):\n    " + call.format(", calibration='data.npz'")
    xf_pytester.makepyfile("import pytest\nfrom pytest_xframe import TensorSpec\n\n" + body)
    result = xf_pytester.runpytest()
    assert result.ret != 0
    expected = "calibration_samples must be an int >= 1, got 0" if where == "marker" else "calibration must be an iterable of samples, got str"
    result.stdout.fnmatch_lines([f"*{expected}*"])


def test_failing_quantized_check_shows_snr_per_layer(q_pytester: pytest.Pytester) -> None:
    xf_pytester = q_pytester
    _skip_unless("tflite-int8-full", "onnxruntime-int8")
    xf_pytester.makepyfile(
        QNET
        + textwrap.dedent(
            """
            @pytest.mark.xframe_parity(backends=["tflite-int8-full", "onnxruntime-int8"], atol=1e-6, rtol=0.0,
                                       max_examples=3, calibration_samples=8, **PIN)
            def test_tight(xframe):
                xframe.check(QNet().eval(), SPEC)
            """
        )
    )
    result = xf_pytester.runpytest("--xframe-cache-dir=qcache")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*[[]tflite-int8-full[]]*",
            "*layer-by-layer SNR vs onnxruntime (fp32) on this input: * of 5 ONNX intermediate values compared",
            "*worst SNR drops*",
            "*dB  '/features/features.1/Relu_output_0' (Relu '/features/features.1/Relu')*",
            "*calibration: 8 sample(s) drawn from the input spec (calibration_seed=0)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*[[]onnxruntime-int8[]]*",
            "*layer-by-layer SNR, int8 static model vs the fp32 model (onnxruntime) on this input: * of 5 ONNX intermediate values compared",
            "*down the graph: /features/features.1/Relu_output_0 * dB*",
        ]
    )
    # each kept case replays through the backend's load_case: the quantized model, not a new conversion
    for backend in ("tflite-int8-full", "onnxruntime-int8"):
        (case,) = xf_pytester.path.glob(f".pytest_cache/d/xframe-artifacts/*/{backend}-*")
        replay = xf_pytester.run(sys.executable, "-m", "pytest_xframe", "replay", str(case))
        assert replay.ret == 1 and "verdict: MISMATCH" in replay.stdout.str(), replay.stdout.str()


def test_int8_io_quantizes_feeds_and_dequantizes_outputs(tmp_path: Path) -> None:
    """With int8_io the flatbuffer's float input and output are int8; the runner still takes and
    returns float, and agrees with the float-I/O flatbuffer to within one output quantization step."""
    _skip_unless("tflite-int8-full")
    import torch
    from torch import nn

    from pytest_xframe import Dim, TensorSpec, calibration
    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.convert.onnx_tf_compat import install
    from pytest_xframe.export import export
    from pytest_xframe.spec import bind_inputs

    install()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)).eval()
    slots = bind_inputs(model, [TensorSpec((Dim("batch", 1, 3), 16))], "Lin")
    artifact = export(model, slots, ("out",), exporter="dynamo", opset=None, out_dir=tmp_path / "e", model_name="Lin", positional=True)
    samples = calibration.from_spec(slots, 8, 0)
    backend = backends.get("tflite-int8-full")
    cache = ArtifactCache(tmp_path / "cache")
    runners = {
        io: backend.prepare(artifact, backends.BuildContext("Lin", tmp_path, cache, calibration=samples, int8_io=io)).runner
        for io in (False, True)
    }
    int8 = runners[True]
    assert {np.dtype(d["dtype"]) for d in int8.inner.signature.get_input_details().values()} == {np.dtype(np.int8)}
    assert {np.dtype(d["dtype"]) for d in int8.inner.signature.get_output_details().values()} == {np.dtype(np.int8)}
    feeds = {"input": np.random.default_rng(0).uniform(-1, 1, (3, 16)).astype(np.float32)}
    got, ref = int8.run(feeds)["out"], runners[False].run(feeds)["out"]
    expected = model(torch.from_numpy(feeds["input"])).detach().numpy()
    (scale, _), = (d["quantization"] for d in int8.inner.signature.get_output_details().values())
    assert got.dtype == np.float32 and got.shape == (3, 4)
    assert np.abs(got - ref).max() <= scale * 1.01
    assert np.abs(got - expected).max() < 0.05


def test_missing_packages_name_each_targets_extra() -> None:
    for name in TARGETS:
        backend = backends.get(name)
        assert backend.extra == name
        fake = replace(backend, modules=("no_such_module_xframe",))
        assert fake.missing() == f"{name} backend needs no_such_module_xframe: pip install 'pytest-xframe[{name}]'"
    assert {backends.get(t).precision for t in TARGETS} == {"fp16", "int8"}
    assert all(backends.get(t).layer_report is not None and backends.get(t).load_case is not None for t in TARGETS)
