"""Two small models as a model repo has them; pyproject.toml declares their parity tests."""

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, features: int = 20, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Tagger(nn.Module):
    """Token ids (and a float mask) in, per-token tag logits out."""

    def __init__(self, vocab: int = 100, width: int = 16, tags: int = 5) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, tags)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids)) * mask.unsqueeze(-1)


def make_classifier(hidden: int = 32) -> Classifier:
    torch.manual_seed(0)
    return Classifier(hidden=hidden).eval()


def make_tagger() -> Tagger:
    torch.manual_seed(0)
    return Tagger().eval()
