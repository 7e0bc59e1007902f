"""torch's thread count while it runs a loop: one thread where that is faster.

A decode step of a small model is a few small matrix products; on 2 cores torch with 2 threads
spent more time handing them out than computing (measured: 10x slower than 1 thread). Larger
models gain from more threads. So the check times one call of the loop's most repeated graph both
ways and keeps the faster, for torch's runs only (ONNX Runtime and TensorFlow keep their own)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: calls timed per thread count (the fastest counts): one call is noisy on a shared machine
REPEATS = 3


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` inside the block (None: left as they are)."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _best(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def fastest_torch_threads(call: Callable[[], Any]) -> int | None:
    """1 when ``call`` runs faster on one thread than on torch's current count, else None."""
    import torch

    if torch.get_num_threads() <= 1:
        return None
    call()  # the first call pays for lazy initialisation
    current = _best(call)
    with torch_threads(1):
        single = _best(call)
    return 1 if single < current else None
