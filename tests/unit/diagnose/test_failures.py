"""The error a backend raises when none of its export routes got to run (``diagnose.failures.route_failure``)."""

from __future__ import annotations


def test_route_failure_heads_with_the_route_that_got_furthest() -> None:
    from pytest_xframe.diagnose.failures import RouteFailure, route_failure
    from pytest_xframe.errors import ConversionError, ExportError

    dynamo = ExportError("torch.onnx.export failed with the dynamo exporter", cause="\x1b[96mTorchExportError\x1b[0m: no", details="dynamo tb",
                         routes=(("torchscript", None),))
    pad = ConversionError("onnx-tf failed converting Pad-13", cause="KeyError: ''", details="pad tb", backend="tensorflow",
                          routes=(("torchscript", 13), ("torchscript", 17), ("dynamo", None)), hint="try backends=['onnx2tf']")
    old = ExportError("torch.onnx.export failed with the torchscript exporter at opset 13", cause="UnsupportedOperatorError: x",
                      details="ts13 tb")
    error = route_failure([RouteFailure("dynamo", None, dynamo), RouteFailure("torchscript", 17, pad, exported=17),
                           RouteFailure("torchscript", 13, old)])
    assert isinstance(error, ConversionError) and error.cause == "KeyError: ''"
    text = str(error)
    assert text.splitlines()[:6] == [
        "onnx-tf failed converting Pad-13 (backend tensorflow)",
        "  cause: KeyError: ''",
        "  routes tried, in order:",
        "    dynamo, its default opset: export failed: TorchExportError: no",
        "    torchscript, opset 17: exported at opset 17, then: onnx-tf failed converting Pad-13: KeyError: ''  <- the failure above",
        "    torchscript, opset 13: export failed: UnsupportedOperatorError: x",
    ]
    assert text.splitlines()[6] == "  try:   try backends=['onnx2tf']"  # every suggested export was tried
    assert error.details.startswith("pad tb") and "--- route dynamo, opset default ---" in error.details and "ts13 tb" in error.details
    assert pad.tried == [] and pad.routes  # the memoised error itself is left alone
    single = route_failure([RouteFailure("dynamo", None, dynamo)])
    assert single.tried == [] and "pass exporter='torchscript'" in str(single)  # the one not tried yet
