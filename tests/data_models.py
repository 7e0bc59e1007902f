"""The models and data of the data-set tests (``tests/e2e/test_data.py``), defined once.

Written as the ``conftest.py`` of their pytester projects, after a line that sets ``ARTIFACTS``
(the directory where the outer session's fixture trained the classifier and wrote the data), so
the inner tests say ``from conftest import trained_classifier``; ``torch_models.py`` is written
beside it (``data_pytester``). Imports torch, numpy and ``torch_models`` at import time;
transformers only when the detector is built.

* ``Classifier``: 32 -> 64 -> 64 -> 4, trained for about a second on four Gaussian blobs
  (``blobs``), ~89% accurate: int8 quantization keeps its decisions.
* ``Outlier``: the trained classifier with one extra hidden unit that is always 10000 and that
  nothing reads (its outgoing weights are 0): torch gives the very same outputs, but an int8
  activation range that must hold 10000 rounds every other unit to 0 or 1 step.
* ``TinyMLP``: ``torch_models.MLP``, whose weight tensors of 48 and 24 elements TFLite's
  converter leaves in float.
* ``Tagger``: the classifier on every position of a sequence, returning token ids (argmax).
* ``Detector``: YOLOS from a tiny config with random weights; boxes, scores and labels as a
  post-processing head returns them. ``onnxruntime-sorted`` (registered below) is ONNX Runtime
  returning the detections sorted by score, as many deployed post-processors do.
"""

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pytest_xframe import Dim, TensorSpec
from torch_models import MLP

D, H, C = 32, 64, 4
SPEC = [TensorSpec((Dim("batch", 1, 4), D))]
#: the directory of the trained weights and the data; set where this module is a conftest
ARTIFACTS = None


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four overlapping Gaussian blobs in 32 dimensions: (x float32 [n, 32], labels int64 [n])."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(100).normal(0.0, 0.5, (C, D))
    labels = rng.integers(0, C, n)
    return (means[labels] + rng.normal(0.0, 1.0, (n, D))).astype(np.float32), labels.astype(np.int64)


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_classifier() -> Classifier:
    """120 Adam steps on 1024 samples, one thread, seeded: the same weights in every process."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = Classifier()
        x, y = (torch.from_numpy(a) for a in blobs(1024, 0))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-3)
        for step in range(120):
            i = (step * 128) % 1024
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 128]), y[i : i + 128]).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def trained_classifier() -> Classifier:
    model = Classifier()
    model.load_state_dict(torch.load(Path(ARTIFACTS) / "classifier.pt"))
    return model.eval()


class Outlier(nn.Module):
    """``base`` with a hidden unit that is always ``value`` and feeds nothing (see the docstring)."""

    def __init__(self, base: Classifier, value: float = 1e4) -> None:
        super().__init__()
        first, second = base.net[0], base.net[2]
        self.first = nn.Linear(D, H + 1)
        self.second = nn.Linear(H + 1, H)
        self.head = nn.Sequential(nn.ReLU(), base.net[4])
        with torch.no_grad():
            self.first.weight.zero_()
            self.first.weight[:H] = first.weight
            self.first.bias[:H] = first.bias
            self.first.bias[H] = value
            self.second.weight.zero_()
            self.second.weight[:, :H] = second.weight
            self.second.bias.copy_(second.bias)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.second(torch.relu(self.first(x))))


class TinyMLP(MLP):
    """``MLP`` (6 -> 8 -> 3, seeded) in eval mode, under a name of its own in messages."""

    def __init__(self) -> None:
        super().__init__()
        self.eval()


class Tagger(nn.Module):
    """A classifier applied at every position: x [batch, seq, 32] -> token ids [batch, seq]."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x).argmax(-1)


class Detector(nn.Module):
    """YOLOS (transformers) from a tiny config: random weights wider than its initialiser's, and
    random detection tokens (initialised to zeros, they would all give one box)."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import YolosConfig, YolosForObjectDetection

        torch.manual_seed(0)
        config = YolosConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=[32, 32],
                             patch_size=8, num_detection_tokens=8, num_labels=3, use_mid_position_embeddings=False)
        self.yolos = YolosForObjectDetection(config)
        with torch.no_grad():
            for p in self.yolos.parameters():
                p.normal_(0.0, 0.3)
            self.yolos.vit.embeddings.detection_tokens.normal_(0.0, 1.0)
        self.eval()

    def forward(self, pixel_values: torch.Tensor) -> dict:
        out = self.yolos(pixel_values=pixel_values)
        scores, labels = out.logits.softmax(-1)[..., :-1].max(-1)
        return {"boxes": out.pred_boxes, "scores": scores, "labels": labels}


class SortedByScore:
    """ONNX Runtime's outputs with the detections sorted by score, highest first."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def run(self, feeds):
        out = self.inner.run(feeds)
        order = np.argsort(-out["scores"], axis=-1, kind="stable")
        return {"boxes": np.take_along_axis(out["boxes"], order[..., None], -2), "scores": np.take_along_axis(out["scores"], order, -1),
                "labels": np.take_along_axis(out["labels"], order, -1)}


def _sorted_prepare(artifact, ctx):
    from pytest_xframe.backends import get

    prepared = get("onnxruntime").prepare(artifact, ctx)
    return dataclasses.replace(prepared, runner=SortedByScore(prepared.runner), route=f"ONNX from {artifact.label}, detections sorted by score")


def pytest_xframe_register_backends(config):
    from pytest_xframe.backends import get

    return [dataclasses.replace(get("onnxruntime"), name="onnxruntime-sorted", prepare=_sorted_prepare, load_case=None)]
