"""Judging quantized deployments on your own data: a classifier, 24 labelled samples committed
beside this file (``data/blobs/*.npz``, one sample each: ``x`` float32 [32] and ``label``), and
the int8 targets judged over them by the default thresholds over data (median SNR >= 20 dB, 95%
of the samples >= 10 dB, top-1 agreement >= 95%, accuracy drop <= 2 points).

Every sample runs as it is on every backend; then hypothesis explores around the samples (each
float value moved by up to ``data_scale`` standard deviations). The calibrated target
(``onnxruntime-int8`` on a graph with a Conv, ``tflite-int8-full``) calibrates on the samples.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pytest_xframe import Dim, TensorSpec

DATA = Path(__file__).parent / "data" / "blobs"
FEATURES, CLASSES = 32, 4


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four overlapping Gaussian blobs; the committed samples are ``blobs(24, 1)``."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(100).normal(0.0, 0.5, (CLASSES, FEATURES))
    labels = rng.integers(0, CLASSES, n)
    return (means[labels] + rng.normal(0.0, 1.0, (n, FEATURES))).astype(np.float32), labels.astype(np.int64)


def write_samples() -> None:
    """How ``data/blobs`` was made (run once; the files are committed)."""
    DATA.mkdir(parents=True, exist_ok=True)
    for i, (x, label) in enumerate(zip(*blobs(24, 1))):
        np.savez(DATA / f"sample-{i:02d}.npz", x=x, label=label)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    """Trained for about a second (4 epochs of 1024 samples), seeded: the same weights in every run."""
    torch.manual_seed(0)
    model = Classifier()
    x, y = blobs(1024, 0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=128)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-3)
    for _epoch in range(4):
        for inputs, labels in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs), labels).backward()
            optimizer.step()
    return model.eval()


@pytest.mark.xframe_parity(backends=["onnxruntime", "tflite-int8", "onnxruntime-int8"], data=str(DATA), max_examples=10)
def test_classifier_on_its_data(xframe, classifier: Classifier) -> None:
    report = xframe.check(classifier, [TensorSpec((Dim("batch", 1, 8), FEATURES))])
    result = report[xframe.backend]
    if result.precision == "int8":
        assert result.quantization["quantized"] > 0, "an int8 pass that quantized nothing would say nothing"
