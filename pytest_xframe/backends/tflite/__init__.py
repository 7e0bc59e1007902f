"""TFLite on the LiteRT interpreter, from the onnx-tf SavedModel: fp32 (``runner``), fp16,
dynamic-range int8 and full-integer int8 targets, and the per-layer error report (``layers``)."""
