"""The model zoo of ``zoo.py``: vision models as a new user brings them, random weights, no downloads.

Two groups, each model built the same way in every process (``torch.manual_seed(0)``):

* models from transformers' own configs (its ResNet, ConvNeXt, Swin, RegNet, EfficientNet,
  MobileNetV2 classifiers, a SegFormer segmenter, YOLOS and DETR detectors), shrunk to a few
  channels per stage but with their architecture and their library's default initialisation;
* the coverage suite's hand-written ones (``tests/torch_models.py``): an SSD-style detector with
  post-processing in ``forward``, a RAFT-like flow model using ``F.grid_sample``, and an
  EfficientNet-like depthwise / squeeze-excite net at torchvision's default initialisation, and
  the same with its batch-norm statistics calibrated (``docs/random-weights.md``).

``ZOO[name]`` is ``(build, inputs)``: ``build()`` returns the model in eval mode; ``inputs`` is the
``inputs=`` of ``xframe.check`` (fixed shapes: images of 32 x 32, the detector's 30 x 30 so that
it must pad, the flow model's frames 64 x 64).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

IMAGE = (1, 3, 32, 32)
#: RAFT works at 1/8 of the frame: 64 x 64 frames, 8 x 8 features
FRAME = (1, 3, 64, 64)


def _hf(config: str, model: str, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        import torch
        import transformers

        torch.manual_seed(0)
        cfg = getattr(transformers, config)(**kwargs)
        return getattr(transformers, model)(cfg).eval()

    return build


def _stages(**kwargs: Any) -> dict[str, Any]:
    return {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1], **kwargs}


def _detr_backbone() -> Any:
    import transformers

    return transformers.ResNetConfig(embedding_size=16, out_features=["stage4"], **_stages())


def _hand(name: str, bn_statistics: bool = False, calibrated: tuple[int, ...] | None = None) -> Callable[[], Any]:
    """A model of ``tests/torch_models.py``; ``bn_statistics``: random batch-norm statistics;
    ``calibrated``: batch-norm statistics measured on random images of that shape."""

    def build() -> Any:
        import torch

        import torch_models  # tests/torch_models.py

        torch.manual_seed(0)
        model = getattr(torch_models, name)()
        if bn_statistics:
            torch_models._with_bn_statistics(model)
        if calibrated is not None:
            torch_models.calibrate_batch_norm(model, lambda: (torch.rand(calibrated) * 2 - 1,))
        return model.eval()

    return build


def _zoo() -> dict[str, tuple[Callable[[], Any], Any]]:
    from pytest_xframe import TensorSpec

    image = [TensorSpec(IMAGE)]
    pixels = {"pixel_values": TensorSpec(IMAGE)}
    return {
        "resnet": (_hf("ResNetConfig", "ResNetForImageClassification", num_labels=10, embedding_size=16, **_stages()), pixels),
        "convnext": (_hf("ConvNextConfig", "ConvNextForImageClassification", num_labels=10, **_stages(depths=[1, 1, 2, 1])), pixels),
        "swin": (_hf("SwinConfig", "SwinForImageClassification", num_labels=10, image_size=32, patch_size=2, embed_dim=16,
                     depths=[1, 1], num_heads=[2, 2], window_size=4), pixels),
        "regnet": (_hf("RegNetConfig", "RegNetForImageClassification", num_labels=10, embedding_size=16, groups_width=8, **_stages()), pixels),
        "efficientnet": (_hf("EfficientNetConfig", "EfficientNetForImageClassification", num_labels=10, image_size=32,
                             width_coefficient=0.25, depth_coefficient=0.3, hidden_dim=320), pixels),
        "mobilenet_v2": (_hf("MobileNetV2Config", "MobileNetV2ForImageClassification", num_labels=10, image_size=32, depth_multiplier=0.35), pixels),
        "segformer": (_hf("SegformerConfig", "SegformerForSemanticSegmentation", num_labels=5, hidden_sizes=[8, 16, 32, 64],
                          decoder_hidden_size=32, depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2]), pixels),
        "yolos": (_hf("YolosConfig", "YolosForObjectDetection", image_size=[32, 32], patch_size=8, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=64, num_detection_tokens=5, num_labels=4), pixels),
        "detr": (_hf("DetrConfig", "DetrForObjectDetection", use_timm_backbone=False, backbone_config=_detr_backbone(),
                     use_pretrained_backbone=False, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=5, num_labels=4), pixels),
        "ssd_like": (_hand("SSDLike", bn_statistics=True), [TensorSpec((1, 3, 30, 30))]),
        "raft_like": (_hand("RaftLike"), {"frame1": TensorSpec(FRAME), "frame2": TensorSpec(FRAME)}),
        "efficientnet_like": (_hand("EfficientNetLike"), image),
        "efficientnet_like_calibrated": (_hand("EfficientNetLike", calibrated=(8, 3, 32, 32)), image),
    }


ZOO: dict[str, tuple[Callable[[], Any], Any]] = _zoo()
