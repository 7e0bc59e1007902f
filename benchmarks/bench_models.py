"""The benchmark's models, shared by every route so that each one builds exactly the same weights.

* ``mlp``: the classifier of ``examples/test_mlp_classifier.py``, 20 -> 50 -> 50 -> 1 with ReLU and a sigmoid.
* ``cnn``: the small image CNN of ``examples/test_cnn.py`` (Conv2d, BatchNorm, pooling), 3x16x16.
* ``resnet18``: ResNet-18 (BasicBlock, [2, 2, 2, 2], 1000 classes, 11.7 M parameters) in plain torch
  (torchvision does not import here), with the standard torchvision layer layout.

``build(name)`` returns the model in eval mode, deterministically initialised (``torch.manual_seed``),
and ``SPECS[name]`` its input shape with the batch axis first; batch is drawn in ``[1, BATCH_MAX]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

BATCH_MIN, BATCH_MAX = 1, 4

#: ResNet-18 input side; 224 is the real thing, BENCH_RESNET_SIDE=64 makes a quicker run
RESNET_SIDE = int(os.environ.get("BENCH_RESNET_SIDE", "224"))

#: per-sample input shape (without the batch axis)
SPECS: dict[str, tuple[int, ...]] = {
    "mlp": (20,),
    "cnn": (3, 16, 16),
    "resnet18": (3, RESNET_SIDE, RESNET_SIDE),
}

#: (atol, rtol) for float32 outputs, the same in every route. The MLP and CNN use the examples'
#: tolerances; ResNet-18 is 11.7 M parameters and 18 layers deep with logits of magnitude ~1-10, so
#: float32 reassociation across three runtimes needs a looser atol.
TOLERANCES: dict[str, tuple[float, float]] = {
    "mlp": (1e-5, 1e-4),
    "cnn": (1e-4, 1e-3),
    "resnet18": (1e-3, 1e-3),
}


# the example models themselves, not copies: the benchmark measures what the examples check
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from test_cnn import SmallCNN  # noqa: E402
from test_mlp_classifier import Classifier  # noqa: E402

# torchvision's BasicBlock, as the coverage suite builds it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from torch_models import BasicBlock  # noqa: E402


class ResNet18(nn.Module):
    """torchvision's resnet18 layout: stem, 4 stages of 2 BasicBlocks, global pool, fc."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers, inplanes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes)))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _trained_statistics(model: nn.Module, shape: tuple[int, ...], steps: int = 3) -> nn.Module:
    """Give batch-norm layers non-trivial running statistics, as a trained model has."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(8, *shape) * 2 + 0.5)
    return model


def build(name: str) -> nn.Module:
    """The model ``name`` in eval mode; the same weights in every process."""
    torch.manual_seed(0)
    if name == "mlp":
        model: nn.Module = Classifier()
    elif name == "cnn":
        model = _trained_statistics(SmallCNN(), SPECS["cnn"], steps=5)
    elif name == "resnet18":
        model = _trained_statistics(ResNet18(), SPECS["resnet18"], steps=1)
    else:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(SPECS)}")
    return model.eval()
