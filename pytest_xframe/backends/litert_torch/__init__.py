"""torch -> TFLite by litert-torch (torch.export, no ONNX), run by the LiteRT interpreter (``runner``)."""
