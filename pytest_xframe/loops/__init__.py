"""Parity of loops: a step module run N times on its own state, and greedy generation with a KV
cache built on it (``loops.transformers``).

A loop is a few graphs (one step; or prefill and decode; or encoder, decoder-init and decode),
each exported and converted once, and a program that runs them on one *side* (torch or a
backend) building every step's feeds from what that side returned before. hypothesis draws the
cases (sizes, steps, prompts, padding); torch's trace of a case is recorded once and every
backend is judged against it run by run, so the first step where a backend leaves torch is named.
Nothing here imports a framework at import time.
"""

from __future__ import annotations

from typing import Any

from .program import Graph, Greedy, Loop, greedy

__all__ = ["Graph", "Greedy", "Loop", "greedy", "run_loop_check", "step_loop"]


def run_loop_check(*args: Any, **kwargs: Any) -> Any:
    """``loops.run.run_loop_check``, imported on first use (it imports the check machinery)."""
    from .run import run_loop_check as run

    return run(*args, **kwargs)


def step_loop(*args: Any, **kwargs: Any) -> Loop:
    """``loops.step.step_loop``, imported on first use."""
    from .step import step_loop as build

    return build(*args, **kwargs)
