"""The torch models of pytest-xframe's own tests, defined once.

Used two ways: imported by the outer tests (``from torch_models import MLP``), and written as the
``conftest.py`` of every pytester project (``xf_pytester``, the toy-backend project), so the inner
tests say ``from conftest import MLP``. It therefore imports only torch and ``pytest_xframe``, and
builds nothing at import time. Every model seeds its own weights (or ``Case.build`` does), so the
same class has the same weights, and the same export cache entry, in every process.

Two groups:

* small models for the plugin's behaviour (``MLP``, ``Branchy``, ``TwoIn``, ``TokenModel``,
  ``Gated``, ``Upsampler``), each used by several test files;
* the coverage architectures and their table ``CASES`` (``tests/unit/check/test_coverage.py``): plain torch
  (torchvision does not import beside torch 2.13 cpu), hidden sizes <= 32. ``CASES[name]`` is a
  :class:`Case`: ``build()`` makes the model (the same weights in every process, so the plugin's
  session cache shares one export between backends) and ``inputs`` is the ``inputs=`` of
  ``xframe.check``. Batch-norm layers get non-trivial running statistics, as a trained model has:
  a BN at its initial statistics is the identity and would hide a converter that drops it. Every
  coverage model takes a dynamic batch (``Dim("batch", 1, 3)``); the sequence models (transformer,
  BERT-like, LSTM, GRU, embedding, dynamic-shape) also a dynamic ``Dim("seq", 2, 6)``.

Models that only make sense in one test (a deliberately unexportable op, a global flag that
``forward`` reads, a model that counts its calls) stay in that test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_xframe import Dim, TensorSpec

SEED = 0
BATCH = Dim("batch", 1, 3)
SEQ = Dim("seq", 2, 6)
VOCAB = 40



# ------------------------------------------------------------------ small shared models


class MLP(nn.Module):
    def __init__(self, d_in: int = 6, d_out: int = 3, hidden: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Branchy(nn.Module):
    """A data-dependent branch: the torchscript exporter freezes the one the example took."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2.0
        return x - 1.0


class TwoIn(nn.Module):
    """Two inputs; a dict output with a nested tuple (flattened to ``sum``, ``pair.0``, ``pair.1``)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(3, 5)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict:
        joint = self.a(left) + self.b(right)
        return {"sum": joint, "pair": (joint.relu(), joint.sigmoid())}


class TokenModel(nn.Module):
    """int64 token ids through an Embedding, a linear head, mean over the sequence."""

    def __init__(self, vocab: int = 50) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, 8)
        self.fc = nn.Linear(8, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(ids)).mean(dim=1)


class Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.sum() > 0:  # data-dependent: the torchscript exporter keeps the branch it traced
            return torch.relu(self.lin(h))
        return h * 2.0 - 1.0


class Gated(nn.Module):
    """The frozen branch sits inside a submodule (``gate``): divergence search names its nodes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.gate = Gate()
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.gate(self.inp(x) + 0.1))


class Upsampler(nn.Module):
    """Bilinear resize by a non-integer factor (1.7): onnx-tf maps coordinates with the size
    ratio, ONNX Runtime with the scale, so the conversion step diverges at the Resize node."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        y = F.interpolate(y, scale_factor=1.7, mode="bilinear", align_corners=False)
        return self.head(torch.tanh(y))


def _with_bn_statistics(model: nn.Module) -> nn.Module:
    """Random running mean / variance and affine parameters for every batch-norm layer."""
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
    return model


# ----------------------------------------------------------------- coverage architectures


# ------------------------------------------------------------------------------------ deep MLP


class DeepMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ------------------------------------------------------------------------------ CNN + BatchNorm


class CnnBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


# ------------------------------------------------------------------------- ResNet BasicBlock x2


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv-bn-relu-conv-bn, plus identity or a 1x1 projection."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNetBlocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.block1 = BasicBlock(16, 16)
        self.block2 = BasicBlock(16, 32, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


# ------------------------------------------------- depthwise-separable conv + squeeze-excite


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class MobileNetLike(nn.Module):
    """MobileNetV3 flavour: stem, depthwise 3x3, squeeze-excite, pointwise 1x1, hardswish."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.depthwise = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.se = SqueezeExcite(16, 8)
        self.pointwise = nn.Sequential(nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 32), nn.Hardswish(), nn.Linear(32, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pointwise(self.se(self.depthwise(self.stem(x)))))


# ------------------------------------------------------------------- nn.TransformerEncoderLayer


class TransformerEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=32, dropout=0.0, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


# -------------------------------------------------------------------------- BERT-like encoder


class BertLayer(nn.Module):
    """Post-norm encoder layer: self-attention with a key-padding mask, then a GELU feed-forward."""

    def __init__(self, d: int, heads: int, ff: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=0.0, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))
        self.norm2 = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False)
        x = self.norm1(x + attended)
        return self.norm2(x + self.ff(x))


class BertLike(nn.Module):
    """Token + position embeddings, LayerNorm, one encoder layer, CLS pooler.

    ``attention_mask`` is int64 0/1 (1 = real token), as a tokenizer returns it; position 0 (the
    CLS token) always attends, so no row is fully masked (that would make softmax NaN in torch).
    """

    def __init__(self, vocab: int = VOCAB, d: int = 32, max_len: int = 16) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, d)
        self.positions = nn.Embedding(max_len, d)
        self.norm = nn.LayerNorm(d)
        self.layer = BertLayer(d, heads=4, ff=32)
        self.pooler = nn.Linear(d, d)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.norm(self.tokens(input_ids) + self.positions(positions))
        mask = torch.cat([torch.ones_like(attention_mask[:, :1]), attention_mask[:, 1:]], dim=1)
        hidden = self.layer(x, key_padding_mask=mask == 0)
        pooled = torch.tanh(self.pooler(hidden[:, 0]))
        return hidden, pooled


# ------------------------------------------------------------------------------ recurrent nets


class BiLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, (h, c) = self.lstm(x)
        return out, h, c


class GRUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 16, batch_first=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.gru(x)
        return out, h


# ------------------------------------------------------------------------------------ Conv1d


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(4, 16, 5, padding=2), nn.ReLU(),
            nn.Conv1d(16, 16, 3, stride=2, dilation=1), nn.ReLU(),
            nn.Conv1d(16, 8, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --------------------------------------------------------------------------- interpolate / upsample


class UpsampleNearest(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


class UpsampleBilinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


# --------------------------------------------------------------------------------- Embedding


class EmbeddingBag(nn.Module):
    """Embedding lookup of int64 ids, mean over the sequence, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(dim=1))


# ------------------------------------------------------------------- LayerNorm + GELU + Softmax


class NormGeluSoftmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.norm = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc2(F.gelu(self.norm(self.fc1(x)))), dim=-1)


# ---------------------------------------------------------------------- two inputs, dict output


class TwoInputsDict(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(12, 16)
        self.item = nn.Linear(6, 16)

    def forward(self, query: torch.Tensor, item: torch.Tensor) -> dict[str, torch.Tensor]:
        q = torch.tanh(self.query(query))
        i = torch.tanh(self.item(item))
        return {"score": (q * i).sum(dim=-1, keepdim=True), "joint": torch.relu(q + i)}


# --------------------------------------------------------------- dynamic batch and sequence dims


class DynamicShapes(nn.Module):
    """Shape arithmetic on dynamic dims: reshape by ``x.shape``, split heads, divide by seq length."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, s, d = x.shape
        h = self.proj(x).reshape(b, s, 4, d // 4).transpose(1, 2)  # batch, heads, seq, head_dim
        pooled = h.sum(dim=2) / s  # mean over the dynamic sequence length
        return pooled.flatten(1), h.amax(dim=2)


# --------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    factory: Callable[[], nn.Module]
    inputs: Any
    #: built models get non-trivial batch-norm statistics
    batchnorm: bool = False

    def build(self) -> nn.Module:
        torch.manual_seed(SEED)
        model = self.factory()
        if self.batchnorm:
            _with_bn_statistics(model)
        return model.eval()


def _image(channels: int, side: int) -> list[TensorSpec]:
    return [TensorSpec((BATCH, channels, side, side))]


CASES: dict[str, Case] = {
    "mlp": Case(DeepMLP, [TensorSpec((BATCH, 16))]),
    "cnn_bn": Case(CnnBatchNorm, _image(3, 16), batchnorm=True),
    "resnet_blocks": Case(ResNetBlocks, _image(3, 16), batchnorm=True),
    "mobilenet_se": Case(MobileNetLike, _image(3, 16), batchnorm=True),
    "transformer_layer": Case(TransformerEncoder, [TensorSpec((BATCH, SEQ, 32))]),
    "bert_like": Case(
        BertLike,
        {
            "input_ids": TensorSpec((BATCH, SEQ), "int64", low=0, high=VOCAB - 1),
            "attention_mask": TensorSpec((BATCH, SEQ), "int64", low=0, high=1),
        },
    ),
    "lstm_2l_bi": Case(BiLSTM, [TensorSpec((BATCH, SEQ, 8))]),
    "gru": Case(GRUNet, [TensorSpec((BATCH, SEQ, 8))]),
    "conv1d": Case(Conv1dNet, [TensorSpec((BATCH, 4, 24))]),
    "upsample_nearest": Case(UpsampleNearest, _image(4, 8)),
    "upsample_bilinear": Case(UpsampleBilinear, _image(4, 8)),
    "embedding": Case(EmbeddingBag, [TensorSpec((BATCH, SEQ), "int64", low=0, high=VOCAB - 1)]),
    "layernorm_gelu_softmax": Case(NormGeluSoftmax, [TensorSpec((BATCH, 16))]),
    "two_inputs_dict": Case(TwoInputsDict, {"query": TensorSpec((BATCH, 12)), "item": TensorSpec((BATCH, 6))}),
    "dynamic_shapes": Case(DynamicShapes, [TensorSpec((BATCH, SEQ, 16))]),
}
