"""Model repos at scale: exports reused across runs on a vouched key, models over protobuf's 2 GiB
limit (external data, tested on a tiny model with the threshold lowered), bounded session memory."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from suite_helpers import WIDE, keyed_test, report_checks


def _run(pytester: pytest.Pytester) -> dict:
    result = pytester.runpytest("--xframe-cache-dir=cache", "--xframe-report=report.json")
    result.assert_outcomes(passed=1)
    (check,) = report_checks(pytester)
    return check


def test_export_key_reuses_the_export_across_runs(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test("'wide-1.0'"))
    cold = _run(xf_pytester)
    assert not cold["export_cache_hit"] and cold["seconds"]["export"] > 0
    warm = _run(xf_pytester)
    assert warm["export_cache_hit"] and warm["seconds"]["export"] == 0.0
    assert len(list((xf_pytester.path / "cache").glob("onnx-export-keyed/*/*/manifest.json"))) == 1

    xf_pytester.makepyfile(test_keyed=keyed_test("'wide-1.1'"))
    changed_key = _run(xf_pytester)
    assert not changed_key["export_cache_hit"] and changed_key["seconds"]["export"] > 0

    xf_pytester.makepyfile(test_keyed=keyed_test("'wide-1.1'", seed=1))
    changed_weights = _run(xf_pytester)
    assert not changed_weights["export_cache_hit"] and changed_weights["seconds"]["export"] > 0
    assert len(list((xf_pytester.path / "cache").glob("onnx-export-keyed/*/*/manifest.json"))) == 3


def test_export_key_files_are_hashed(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test("['wide.py', 'src/**/*.py']"))
    (xf_pytester.path / "src" / "pkg").mkdir(parents=True)
    helper = xf_pytester.path / "src" / "pkg" / "helper.py"
    helper.write_text("SCALE = 1\n")
    assert not _run(xf_pytester)["export_cache_hit"]
    assert _run(xf_pytester)["export_cache_hit"]
    helper.write_text("SCALE = 2\n")  # code forward might call changed: the key changes with it
    assert not _run(xf_pytester)["export_cache_hit"]


def test_export_key_in_the_ini_file(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test(None))
    xf_pytester.makeini("[pytest]\naddopts = -p no:randomly\nxframe_export_key = wide.py\n")
    assert not _run(xf_pytester)["export_cache_hit"]
    assert _run(xf_pytester)["export_cache_hit"]


def test_export_key_naming_a_missing_file_is_a_spec_error(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test("['models/missing.py']"))
    result = xf_pytester.runpytest("--xframe-cache-dir=cache")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SpecError*", "*export_key names 'models/missing.py', which matches no file*"])


def test_without_export_key_each_run_exports_again(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test(None))
    for _ in range(2):
        check = _run(xf_pytester)
        assert not check["export_cache_hit"] and check["seconds"]["export"] > 0
    assert not list((xf_pytester.path / "cache").glob("onnx-export*"))


def test_export_key_must_be_a_string_or_paths(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test("3"))
    result = xf_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*export_key must be a version string or a list of file paths/globs, got 3*"])


#: lowers the external data threshold to 0 bytes for the inner session (a 2 GiB model in miniature)
EXTERNAL_CONFTEST = """
import pytest


@pytest.fixture(autouse=True)
def _tiny_external_data_threshold(monkeypatch):
    # restored after each test: in-process sessions share pytest_xframe.export.to_onnx with the outer one.
    # Imported here, not named by a dotted string: an earlier in-process session's copy of the module
    # may still hang on the package as an attribute, and patching that one would miss this session's
    import pytest_xframe.export.to_onnx as to_onnx

    monkeypatch.setattr(to_onnx, "EXTERNAL_DATA_BYTES", 0)
"""

#: the exporters this stack has (dynamo needs onnxscript: not on tox's py311-tf215)
EXPORTERS = ["dynamo", "torchscript"] if importlib.util.find_spec("onnxscript") else ["torchscript"]

EXTERNAL_TESTS = WIDE + f"""
EXPORTERS = {EXPORTERS!r}

class Flips(Wide):
    # the torchscript exporter freezes the branch the example took: ONNX differs on negative sums
    def forward(self, x):
        y = self.fc(x)
        return y * 2.0 if y.sum() > 0 else y - 1.0


@pytest.mark.xframe_parity(backends=["onnxruntime", "tensorflow"], max_examples=3)
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_runs_from_external_data(xframe, exporter):
    xframe.check(Wide().eval(), INPUTS, exporter=exporter)


def test_mismatch_is_kept_with_its_data(xframe):
    xframe.check(Flips().eval(), INPUTS, backends=["onnxruntime"], exporter="torchscript", max_examples=20, seed=0)
"""


def test_models_over_the_protobuf_limit(xf_pytester: pytest.Pytester) -> None:
    """ONNX Runtime runs the model from its external data file; onnx-tf refuses it by name; a
    failing case keeps the data file beside model.onnx and replays from it."""
    xf_pytester.makeconftest(xf_pytester.path.joinpath("conftest.py").read_text() + EXTERNAL_CONFTEST)
    xf_pytester.makepyfile(test_external="import pytest\n" + EXTERNAL_TESTS)
    result = xf_pytester.runpytest("--xframe-report=report.json", "--xframe-artifacts-dir=kept")
    result.assert_outcomes(passed=len(EXPORTERS), failed=len(EXPORTERS) + 1)
    result.stdout.fnmatch_lines(["*onnx-tf cannot convert a model over protobuf's 2 GiB limit*weights in external data*"])
    assert "also failed" not in result.stdout.str()  # one refusal: another exporter writes the same weights
    checks = report_checks(xf_pytester)
    ort = [c for c in checks if c["backend"] == "onnxruntime" and "external_data" in c["test"]]
    assert [c["verdict"] for c in ort] == ["passed"] * len(EXPORTERS)
    assert all(c["onnx"].endswith("external data") for c in ort)
    assert {c["verdict"] for c in checks if c["backend"] == "tensorflow"} == {"error"}

    (case,) = [c for c in checks if "mismatch" in c["test"]]
    assert case["verdict"] == "failed" and case["onnx"].endswith("external data")
    kept = Path(case["artifacts"])
    data = kept / "model.onnx.data"
    assert data.stat().st_size >= 32 * 32 * 4
    replay = subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", str(kept)], capture_output=True, text=True, check=False)
    assert replay.returncode == 1, replay.stderr
    assert "verdict: MISMATCH" in replay.stdout
    data.unlink()  # the replay really reads the weights from the data file
    broken = subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", str(kept)], capture_output=True, text=True, check=False)
    assert broken.returncode != 0 and "model.onnx.data" in broken.stderr + broken.stdout


SIZE_LIMITED = {  # backend: (its converter's refusal, its cause)
    "litert-torch": ("litert-torch cannot convert a model over the FlatBuffers 2 GiB limit", "one TFLite flatbuffer*32-bit offsets cap a buffer at 2 GiB"),
    "tflite": ("onnx-tf (then the TFLite converter) cannot convert a model over protobuf's 2 GiB limit", "one protobuf message"),
    "onnx2tf": ("onnx2tf cannot convert a model over protobuf's 2 GiB limit", "one protobuf message"),
    **{  # the reduced-precision TFLite targets start from the same onnx-tf SavedModel
        target: ("onnx-tf (then the TFLite converter) cannot convert a model over protobuf's 2 GiB limit", "one protobuf message")
        for target in ("tflite-fp16", "tflite-int8", "tflite-int8-full")
    },
}


def test_size_limited_backends_refuse_before_converting(xf_pytester: pytest.Pytester) -> None:
    """litert-torch (which converts the module itself but writes one flatbuffer, 2 GiB at most),
    the TFLite targets and onnx2tf refuse a model whose weights are past the external data threshold, by
    name, on the first export and before converting; ONNX Runtime runs the same model."""
    from pytest_xframe.backends import registry

    found = registry()
    backends = [b for b in SIZE_LIMITED if not found.get(b).missing()]
    if not backends:
        pytest.skip(f"none of {', '.join(SIZE_LIMITED)} is installed")
    xf_pytester.makeconftest(xf_pytester.path.joinpath("conftest.py").read_text() + EXTERNAL_CONFTEST)
    xf_pytester.makepyfile(test_limited=f"""import pytest
{WIDE}

@pytest.mark.xframe_parity(backends={["onnxruntime", *backends]!r}, max_examples=3)
def test_wide(xframe):
    xframe.check(Wide().eval(), INPUTS)
""")
    # a subprocess: in-process, torch.export of this module failed after an earlier test's session
    result = xf_pytester.runpytest_subprocess("--xframe-report=report.json", "--xframe-cache-dir=cache")
    result.assert_outcomes(passed=1, failed=len(backends))
    for backend in backends:
        summary, cause = SIZE_LIMITED[backend]
        result.stdout.fnmatch_lines([
            f"*{summary} (* KiB, weights in external data) (model Wide, backend {backend})",
            f"  cause: *{cause}*",
            f"  try:   check this model against onnxruntime*for {backend}",
        ])
    assert "also failed" not in result.stdout.str()  # refused on the first export, the next exporter not tried
    verdicts = {c["backend"]: (c["verdict"], c["onnx"]) for c in report_checks(xf_pytester)}
    assert verdicts.pop("onnxruntime")[0] == "passed"
    assert {v for v, _ in verdicts.values()} == {"error"} and set(verdicts) == set(backends)
    cache = xf_pytester.path / "cache"  # ONNX Runtime runs the export itself: no entry of its own
    converted = {p.name for p in cache.iterdir()} if cache.exists() else set()
    assert not converted & {*backends, "onnx-tf", "onnx2tf"}, converted  # refused up front: nothing converted


MANY_MODELS = """
import pytest, torch
from torch import nn
from pytest_xframe import TensorSpec, Dim
import importlib
from pytest_xframe.plugin import SESSION_KEY

memos = importlib.import_module("pytest_xframe.check.memo")  # the module the session's memo uses

memos.PREPARED_MEMO = 3
memos.EXPORT_MEMO = 4
memos.OUTPUT_NAMES_MEMO = 4
SIZES = []


class Sized(nn.Module):
    def __init__(self, width):
        super().__init__()
        torch.manual_seed(width)
        self.fc = nn.Linear(4, width)

    def forward(self, x):
        return self.fc(x).relu()


@pytest.mark.parametrize("width", range(2, 16))
def test_model(xframe, request, width):
    xframe.check(Sized(width).eval(), [TensorSpec((Dim("batch", 1, 2), 4))], backends=["onnxruntime"], exporter="torchscript", max_examples=2)
    SIZES.append(request.config.stash[SESSION_KEY].memo().memo_sizes())


def test_memos_stay_bounded():
    assert len(SIZES) == 14
    assert max(s["prepared"] for s in SIZES) == 3
    assert max(s["exports"] for s in SIZES) == 4
    assert max(s["output_names"] for s in SIZES) == 4
    assert SIZES[-1]["prepared_bytes"] < sum(s["prepared_bytes"] for s in SIZES)
"""


def test_a_session_over_many_models_keeps_bounded_memos(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(test_many=MANY_MODELS)
    xf_pytester.runpytest().assert_outcomes(passed=15)


def test_declared_model_with_export_key(xf_pytester: pytest.Pytester) -> None:
    """A model repo declares its model in pyproject.toml with export_key: the second CI run (the
    cache kept between runs) reuses the export."""
    xf_pytester.makepyfile(wide=WIDE + "\n\ndef make():\n    return Wide().eval()\n")
    xf_pytester.makeini("[pytest]\naddopts = -p no:randomly\npythonpath = .\n")
    xf_pytester.makefile(
        ".toml",
        pyproject="""
        [[tool.xframe.models]]
        id = "wide"
        factory = "wide:make"
        inputs = "x=float32[batch:1..3,32]"
        backends = ["onnxruntime"]
        exporter = "torchscript"
        max_examples = 3
        export_key = ["wide.py"]
        """,
    )
    assert not _run(xf_pytester)["export_cache_hit"]
    warm = _run(xf_pytester)
    assert warm["export_cache_hit"] and warm["seconds"]["export"] == 0.0
