"""Error pictures for a failing float output, saved beside the artifacts (needs matplotlib).

A histogram of the absolute error shows whether a mismatch is a few outliers or a shift of
everything; a heat map over the last two (spatial) dims shows where in the image or sequence it is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def save_error_plot(directory: Path, name: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> Path | None:
    """Write ``error-<name>.png``; None when matplotlib is missing or the output is not float."""
    if not available() or ref.dtype.kind != "f" or ref.shape != got.shape or ref.size < 2:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .artifacts import safe_name

    r, g = ref.astype(np.float64), got.astype(np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(g - r)
    finite = err[np.isfinite(err)]
    spatial = ref.ndim >= 2 and min(ref.shape[-2:]) > 1
    fig, axes = plt.subplots(1, 2 if spatial else 1, figsize=(11 if spatial else 6, 4), squeeze=False)
    ax = axes[0][0]
    positive = finite[finite > 0]
    if positive.size:
        bins = np.logspace(np.log10(positive.min()), np.log10(max(positive.max(), positive.min() * 10)), 40)
        ax.hist(positive, bins=bins, color="tab:red")
        ax.set_xscale("log")
    ax.axvline(atol, color="black", linestyle="--", label=f"atol={atol:g}")
    ax.set_title(f"{name}: |backend - torch| ({(err > atol + rtol * np.abs(r)).sum()} of {err.size} out of tolerance)")
    ax.set_xlabel("absolute error")
    ax.set_ylabel("elements")
    ax.legend()
    if spatial:
        heat = np.nan_to_num(err, nan=np.inf).reshape(-1, *ref.shape[-2:]).max(axis=0)
        image = axes[0][1].imshow(np.where(np.isfinite(heat), heat, np.nan), cmap="magma")
        axes[0][1].set_title(f"max abs error over leading dims, shape {list(ref.shape)}")
        fig.colorbar(image, ax=axes[0][1])
    fig.tight_layout()
    path = directory / f"error-{safe_name(name, limit=40)}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
