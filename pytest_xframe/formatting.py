"""Arrays as short text for messages, reports and replay: numpy only, no framework."""

from __future__ import annotations

import numpy as np

#: arrays with at most this many elements are shown value by value in messages
SHOW_VALUES_LIMIT = 16


def describe_array(a: np.ndarray) -> str:
    """``float32[2, 3] in [-0.5, 0.9]``, plus the values themselves when there are few."""
    text = f"{a.dtype}{list(a.shape)}"
    if a.size and a.dtype.kind in "fiub":
        if a.size <= SHOW_VALUES_LIMIT:
            text += " " + np.array2string(a, separator=", ", precision=6).replace("\n", "")
        else:
            text += f" in [{a.min():.4g}, {a.max():.4g}]"
    return text
