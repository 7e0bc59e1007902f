"""GPU check, run on a machine with CUDA (not part of the CPU test suite).

torch runs the model on the GPU (the reference) while ONNX Runtime runs the exported model on
whatever providers its package has; prints what it found and fails only on a real mismatch.
Run: ``python -m pytest -p pytest_xframe.plugin benchmarks/device_check.py -v -s``.
"""

import pytest
import torch
from torch import nn

from pytest_xframe import Dim, TensorSpec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_providers_report() -> None:
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    print(f"\nonnxruntime {onnxruntime.__version__}: {providers}; torch {torch.__version__} on {torch.cuda.get_device_name()}")
    assert "CPUExecutionProvider" in providers


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


@pytest.mark.parametrize("tf32", [False, True], ids=["fp32", "tf32"])
def test_cuda_reference_against_onnxruntime(xframe, tf32: bool) -> None:
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    model = ConvNet().cuda().eval()
    report = xframe.check(model, inputs=[TensorSpec((Dim("batch", 1, 4), 3, 32, 32))], backends=["onnxruntime"],
                          exporter="torchscript", max_examples=10, atol=1e-2 if tf32 else 1e-4, rtol=1e-2 if tf32 else 1e-3)
    result = report["onnxruntime"]
    print(f"\n{'tf32' if tf32 else 'fp32'}: max abs {result.max_abs:.3g}, max rel {result.max_rel:.3g} over {result.examples} examples")
    assert next(model.parameters()).is_cuda  # the model stays where it was
