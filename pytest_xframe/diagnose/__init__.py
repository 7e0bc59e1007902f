"""After a check fails: which step broke and the first divergent ONNX node (``divergence``), the
mismatch message and the kept case (``failures``, ``artifacts``, ``plots``), and ``replay``, which
re-runs a kept case without pytest or torch (``python -m pytest_xframe replay DIR``).
"""
