"""ONNX Runtime on the CPU provider (``runner``), and its static int8 quantization (``int8``)."""
