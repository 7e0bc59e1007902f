"""What a user reads when a zoo model fails or cannot fail (pytester sessions, real frameworks):

* the headline is the failure that decided the result, every route tried is listed with its own
  cause, the full text is kept in the artifacts' error file, no escape codes, no advice to try
  what was tried;
* fp32 accumulation-order noise is named as such, with its figures and a tolerance that fits, and
  the default fp32 atol grows with the output's magnitude;
* an output below its tolerance warns that the check cannot fail;
* top-k agreement only for class scores;
* the frameworks' logging stays out of the report, even with ``-rA``.
"""

from __future__ import annotations

import json

import pytest

from suite_helpers import skip_unless_imports

#: models that only these tests use, written into each project as ``diag_models.py``
MODELS = '''
import torch
from torch import nn


class Spectrogram(nn.Module):
    """A data-dependent branch (the dynamo exporter refuses it), then an STFT: the TorchScript
    exporter writes STFT-17, which onnx-tf has no handler for, and cannot export it at opset 13."""

    def forward(self, x):
        if bool(x.sum() > 0):
            x = x * 2
        return torch.stft(x, n_fft=8, hop_length=4, window=torch.hann_window(8), return_complex=False, center=False)


class DepthNet(nn.Module):
    """A depth head in millimetres: eight 3x3 convolutions, outputs in the thousands. fp32 rounding
    in another order moves them by about 1e-4: noise, far above an atol of 1e-5."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        layers = [nn.Conv2d(3, 32, 3, padding=1), nn.ReLU()]
        for _ in range(6):
            layers += [nn.Conv2d(32, 32, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(32, 1, 3, padding=1))

    def forward(self, image):
        return {"depth": self.body(image) * 1000.0}


class Heads(nn.Module):
    """Class scores next to outputs that are not: boxes of shape [batch, 4] and an embedding."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(8, 32)
        self.cls, self.box, self.emb = nn.Linear(32, 10), nn.Linear(32, 4), nn.Linear(32, 16)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return {"logits": self.cls(h), "boxes": self.box(h), "embedding": self.emb(h)}
'''


@pytest.fixture
def project(xf_pytester: pytest.Pytester) -> pytest.Pytester:
    xf_pytester.makepyfile(diag_models=MODELS)
    return xf_pytester


def _error_file(project: pytest.Pytester) -> str:
    """The one ``error.txt`` the session kept under its artifacts directory."""
    (found,) = list((project.path / "artifacts").rglob("error.txt"))
    return found.read_text()


def test_the_headline_is_the_failure_that_decided_with_every_route_and_its_cause(project: pytest.Pytester) -> None:
    skip_unless_imports("onnxscript", "the dynamo exporter's own failure is the first route listed")
    project.makepyfile(
        """
        import pytest
        from diag_models import Spectrogram
        from pytest_xframe import TensorSpec

        def test_spectrogram(xframe):
            xframe.check(Spectrogram().eval(), [TensorSpec((1, 32))], backends=["tensorflow"], max_examples=2)
        """
    )
    result = project.runpytest("--xframe-artifacts-dir=artifacts", "-rA")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*pytest_xframe.ConversionError",
            # dynamo failed to export, TorchScript 17 exported but did not convert: that decided
            "onnx-tf does not implement STFT-17 (node *, model opset ai.onnx 17) (model Spectrogram, backend tensorflow)",
            "  cause: *STFT*",
            "  routes tried, in order:",
            "    dynamo, its default opset: export failed: TorchExportError: Failed to export the model with torch.export; "
            "caused by GuardOnDataDependentSymNode: Could not guard on data-dependent expression*",
            "    torchscript, opset 17: exported at opset 17, then: onnx-tf does not implement STFT-17 *  <- the failure above",
            "    torchscript, opset 13: export failed: UnsupportedOperatorError: Exporting the operator 'aten::stft' to ONNX opset version 13*",
            "  try:   STFT has no onnx-tf handler at any opset*",
            "  kept:  artifacts*",
        ]
    )
    out = result.stdout.str()
    assert "\x1b[" not in out  # torch colours its messages; none of it reaches the report
    assert "also failed" not in out
    advice = next(line for line in result.stdout.lines if line.startswith("  try:"))
    assert "exporter=" not in advice  # every export of the plan was tried: none is suggested again
    kept = _error_file(project)
    assert "\x1b[" not in kept
    # every route's full text: the decisive traceback, then the other two routes'
    assert "--- route dynamo, opset default ---" in kept and "--- route torchscript, opset 13 ---" in kept
    assert "GuardOnDataDependentSymNode" in kept and "UnsupportedOperatorError" in kept
    # what torch printed while the TorchScript export failed is there, not in the report
    assert "what the frameworks printed and logged meanwhile" in kept


def test_fp32_noise_is_named_with_its_figures_and_the_default_atol_grows_with_the_output(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from diag_models import DepthNet
        from pytest_xframe import TensorSpec

        pytestmark = pytest.mark.xframe_parity(max_examples=2, seed=0)
        IMAGE = [TensorSpec((1, 3, 16, 16))]

        def test_tight(xframe):
            xframe.check(DepthNet().eval(), IMAGE, atol=1e-5, rtol=0.0)

        def test_default(xframe):
            xframe.check(DepthNet().eval(), IMAGE)
        """
    )
    result = project.runpytest("--xframe-report=report.json")
    result.assert_outcomes(passed=2, failed=2)  # each test runs onnxruntime and tensorflow
    for backend in ("onnxruntime", "tensorflow"):
        result.stdout.fnmatch_lines(
            [
                f"[[]{backend}[]] diagnosis: fp32 accumulation-order noise, not a broken step*",
                "  output 'depth': * / 256 elements (*%) over atol=1e-05, rtol=0 (worst *x the tolerance), cosine 1.000000, SNR * dB",
                "    the error's RMS is * x the output's RMS (*), the largest error * is * x the RMS; "
                "rounding (2^-24) summed over * ONNX nodes gives about * x the RMS",
                "  a tolerance that fits this magnitude: atol=* (twice the largest error); "
                "or leave atol unset: the default fp32 atol grows to 0.0001 x the output's RMS (* here)",
            ]
        )
    out = result.stdout.str()
    assert "step introduced the error" not in out and "could not be pinned down" not in out
    checks = {(c["test"].split("::")[1], c["backend"]): c for c in json.loads((project.path / "report.json").read_text())["checks"]}
    for backend in ("onnxruntime", "tensorflow"):
        assert "noise" in checks["test_tight[" + backend + "]", backend]["diagnosis"]
        default = checks["test_default[" + backend + "]", backend]
        assert default["verdict"] == "passed"
        (output,) = default["outputs"]
        # no atol set: the default fp32 atol grows to rtol x the output's RMS, above its rounding
        assert output["policy"]["atol"] == 1e-5 and output["policy"]["atol_scale"] == 1e-4
        assert output["atol"] > 1e-3 and output["metrics"]["smallest_atol"] < output["atol"] / 10


def test_an_output_below_its_tolerance_warns_that_the_check_cannot_fail(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        import torch
        from conftest import EfficientNetLike, calibrate_batch_norm
        from pytest_xframe import TensorSpec

        pytestmark = pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=3, seed=0)
        IMAGE = [TensorSpec((1, 3, 32, 32))]

        def test_default_init(xframe):
            torch.manual_seed(0)
            xframe.check(EfficientNetLike().eval(), IMAGE)

        def test_calibrated(xframe):
            torch.manual_seed(0)
            model = calibrate_batch_norm(EfficientNetLike(), lambda: (torch.rand(8, 3, 32, 32) * 2 - 1,))
            xframe.check(model, IMAGE)
        """
    )
    result = project.runpytest("-W", "always::pytest_xframe.VacuousCheckWarning")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*::test_default_init[[]onnxruntime[]]",
            "  *VacuousCheckWarning: *::test_default_init[[]onnxruntime[]]: the parity check of EfficientNetLike cannot fail: "
            "torch's output 'output' is at most *e-0* in magnitude over the 3 inputs drawn, within the tolerance of zero "
            "(atol=1e-05, rtol=0.0001) on onnxruntime: a backend returning zeros would pass. Give the model weights that bring "
            "its outputs to their real scale (calibrated batch-norm statistics, a reinitialised zero head: docs/random-weights.md)*",
        ]
    )
    out = result.stdout.str()
    assert out.count("VacuousCheckWarning:") == 1  # the calibrated model's logits are at their real scale
    assert "drawn over the drawn" not in out
    strict = project.runpytest("-W", "error::pytest_xframe.VacuousCheckWarning")
    strict.assert_outcomes(passed=1, failed=1)


def test_top_k_agreement_only_for_class_scores(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from diag_models import Heads
        from pytest_xframe import TensorSpec

        def test_heads(xframe):
            xframe.check(Heads().eval(), [TensorSpec((3, 8))], backends=["onnxruntime"], max_examples=2)

        def test_declared(xframe):
            xframe.check(Heads().eval(), [TensorSpec((3, 8))], backends=["onnxruntime"], max_examples=2,
                         policy={"outputs": {"embedding": {"topk": {"k": 3}}}})
        """
    )
    result = project.runpytest("--xframe-report=report.json")
    result.assert_outcomes(passed=2)
    checks = {c["test"].split("::")[1]: c for c in json.loads((project.path / "report.json").read_text())["checks"]}
    topk = {name: {o["name"]: o["metrics"]["topk"] for o in c["outputs"]} for name, c in checks.items()}
    # named as class scores: computed; boxes [3, 4] and an embedding are not class scores
    assert topk["test_heads"] == {"logits": 1.0, "boxes": None, "embedding": None}
    # a policy that sets topk declares the output as class scores
    assert topk["test_declared"]["embedding"] == 1.0


def test_framework_logging_stays_out_of_the_report(project: pytest.Pytester) -> None:
    """An SSD-style detector: the dynamo exporter fails on its data-dependent branch (dumping the
    graph and its trace logs), the TorchScript export converts (absl and TensorFlow log)."""
    skip_unless_imports("onnxscript", "the dynamo exporter's logs are what is kept out")
    project.makepyfile(
        """
        import torch
        from conftest import SSDLike, _with_bn_statistics
        from pytest_xframe import TensorSpec

        def test_detector(xframe):
            torch.manual_seed(0)
            report = xframe.check(_with_bn_statistics(SSDLike()).eval(), [TensorSpec((1, 3, 30, 30))], max_examples=2, seed=0)
            assert report.passed
        """
    )
    result = project.runpytest_subprocess("-rA", "-p", "no:randomly", "--xframe-report=report.json")
    result.assert_outcomes(passed=1)
    out = result.stdout.str() + result.stderr.str()
    for noise in ("torch.__trace", "Torch IR graph", "def forward(self", "absl", "oneDNN", "I0000", "torchvision is not installed"):
        assert noise not in out, noise
    assert "Captured log call" not in out and "Captured stderr call" not in out and "Captured stdout call" not in out
    # each backend fell back past the dynamo route, whose own cause is named
    for check in json.loads((project.path / "report.json").read_text())["checks"]:
        assert check["message"].startswith("fell back to torchscript, opset 17 after: dynamo, its default opset: export failed: "
                                           "TorchExportError: Failed to export the model with torch.export; caused by"), check["message"]
