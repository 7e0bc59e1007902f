"""TensorFlow through onnx-tf: the SavedModel runner (``runner``), the conversion (``onnx_tf``,
with ``lowering``) and the compatibility layer that keeps onnx-tf 1.10 working (``onnx_tf_compat``)."""
