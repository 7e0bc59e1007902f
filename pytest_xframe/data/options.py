"""Validation of the data options (``data``, ``data_limit``, ``data_scale``); pure Python, read at
pytest start-up for the ini file and pyproject.toml's declared models."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError

#: default ``data_scale``: explored inputs move each float value by up to 0.1 standard deviation
DEFAULT_SCALE = 0.1


def validate_data_options(out: dict[str, Any], where: str) -> None:
    """``data`` (a path or an iterable, kept as given: it is streamed, never copied here),
    ``data_limit`` (int >= 1) and ``data_scale`` (finite number >= 0)."""
    value = out.get("data")
    if value is not None:
        if isinstance(value, os.PathLike):
            out["data"] = os.fspath(value)
        elif isinstance(value, str):
            if not value.strip():
                raise SpecError(f"data must be a path or an iterable of samples, got an empty string in {where}")
        elif isinstance(value, (bytes, Mapping)) or not (hasattr(value, "__iter__") or (hasattr(value, "__getitem__") and hasattr(value, "__len__"))):
            raise SpecError(
                f"data must be a path or an iterable of samples, got {type(value).__name__} in {where}",
                hint="a directory of .npz files, one stacked .npz, a list of dicts/tuples of arrays, or a torch Dataset",
            )
    limit = out.get("data_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SpecError(f"data_limit must be an int >= 1, got {limit!r} in {where}")
    if "data_scale" in out:
        scale = out["data_scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
            raise SpecError(f"data_scale must be a finite number >= 0, got {scale!r} in {where}",
                            hint=f"explored inputs move each float value by up to data_scale standard deviations (default {DEFAULT_SCALE})")
        out["data_scale"] = float(scale)
