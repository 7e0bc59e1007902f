"""The classic tutorial model: train a small MLP classifier, then check it runs the same everywhere."""

import pytest
import torch
from torch import nn

from pytest_xframe import Dim, TensorSpec


class Classifier(nn.Module):
    """20 -> 50 -> 50 -> 1 with ReLU and a sigmoid: a binary classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs in 20 dimensions, one per class."""
    y = torch.randint(0, 2, (n, 1), generator=generator).float()
    x = torch.randn(n, 20, generator=generator) + (y * 2 - 1) * 0.75
    return x, y


@pytest.fixture(scope="module")
def trained_classifier() -> Classifier:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x_train, y_train = make_data(512, generator)
    model = Classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.BCELoss()
    for _epoch in range(5):
        for i in range(0, len(x_train), 64):
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[i : i + 64]), y_train[i : i + 64])
            loss.backward()
            optimizer.step()
    return model.eval()


def test_classifier_learns(trained_classifier: Classifier) -> None:
    x_test, y_test = make_data(256, torch.Generator().manual_seed(1))
    with torch.no_grad():
        accuracy = ((trained_classifier(x_test) > 0.5).float() == y_test).float().mean().item()
    assert accuracy > 0.9


@pytest.mark.xframe_parity(atol=1e-5, rtol=1e-4, max_examples=30)
def test_classifier_parity(xframe, trained_classifier: Classifier) -> None:
    xframe.check(trained_classifier, inputs=[TensorSpec((Dim("batch", 1, 8), 20), low=-3.0, high=3.0)])
