"""A small image CNN with Conv2d, BatchNorm and pooling."""

import pytest
import torch
from torch import nn

from pytest_xframe import Dim, TensorSpec


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(16, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(image), 1))


def trained_statistics(model: SmallCNN) -> SmallCNN:
    """Give the batch-norm layers non-trivial running statistics, as a trained model has."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(16, 3, 16, 16) * 2 + 0.5)
    return model.eval()


@pytest.mark.xframe_parity(atol=1e-4, rtol=1e-3, max_examples=15)
def test_cnn_parity(xframe) -> None:
    torch.manual_seed(0)  # the same weights in both backends' runs: one export and conversion
    model = trained_statistics(SmallCNN())
    xframe.check(model, inputs=[TensorSpec((Dim("batch", 1, 4), 3, 16, 16))])
