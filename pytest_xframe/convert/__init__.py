"""ONNX -> TensorFlow-family converters, one module each; onnx_tf_compat keeps onnx-tf working."""
