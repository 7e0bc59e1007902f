"""Where two frameworks first part ways: the first ONNX node out of tolerance whose inputs agree.

Three entry points, each in its own module, each a few phases returning dataclasses:

* :func:`locate_conversion_divergence` (:mod:`.conversion_locator`): onnxruntime vs a converted
  backend, through the backend's ``run_intermediates``.
* :func:`locate_export_divergence` (:mod:`.export_locator`, with :mod:`.torch_run` and
  :mod:`.scopes`): torch vs onnxruntime, through forward hooks and the module scopes of the nodes.
* :func:`attribute_step` (:mod:`.steps`): which step (export, conversion, runtime) a final
  mismatch belongs to, from the outputs of torch, onnxruntime and the backend.

:mod:`.graph` holds the ONNX utilities both locators share, :mod:`.report` what they return.
"""

from __future__ import annotations

from .conversion_locator import locate_conversion_divergence
from .export_locator import locate_export_divergence
from .report import DivergenceReport, NodeDivergence
from .steps import STEPS, attribute_step

__all__ = [
    "STEPS",
    "DivergenceReport",
    "NodeDivergence",
    "attribute_step",
    "locate_conversion_divergence",
    "locate_export_divergence",
]
