"""TensorFlow through onnx2tf: the SavedModel runner (``runner``) and the conversion (``convert``)."""
