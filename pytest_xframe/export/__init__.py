"""torch -> ONNX: the export (``to_onnx``), the model's outputs named as the exporters name them
(``outputs``), exports kept on disk (``cache``), and the exported graph with ONNX Runtime as the
reference implementation of its meaning (``onnx_graph``).
"""
