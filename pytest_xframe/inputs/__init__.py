"""What a model takes and what a check feeds it: input specs (``TensorSpec``, ``Dim``), the same
written as text, hypothesis strategies that draw examples, and calibration samples for quantized
targets. The first step of the flow: inputs -> export -> backends -> judge -> report -> diagnose.
"""
