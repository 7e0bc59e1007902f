"""What a model takes and what a check feeds it: input specs (``TensorSpec``, ``Dim``), the same
written as text, hypothesis strategies that draw examples, calibration samples for quantized
targets, and the user's own samples (``data``: read, checked and streamed, and the search around
them). The first step of the flow: inputs -> export -> backends -> judge -> report -> diagnose.
"""
