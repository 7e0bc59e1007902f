"""The project's own table in pyproject.toml, ``[tool.xframe]``: policies, declared models.

pytest's ini options are flat strings; nested settings (a policy per output glob, a list of models)
live in this table instead, read once per run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .errors import SpecError


def pyproject_path(config: Any) -> Path | None:
    """The pyproject.toml pytest took its settings from, else the one at the rootdir, if any."""
    ini = getattr(config, "inipath", None)
    if ini is not None and Path(ini).name == "pyproject.toml":
        return Path(ini)
    candidate = Path(config.rootpath) / "pyproject.toml"
    return candidate if candidate.is_file() else None


def tool_table(config: Any) -> dict[str, Any]:
    """``[tool.xframe]`` as a dict ({} when there is none)."""
    path = pyproject_path(config)
    if path is None:
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"cannot read [tool.xframe] from {path}", cause=str(exc), hint="fix the file's TOML syntax") from None
    table = data.get("tool", {}).get("xframe", {})
    if not isinstance(table, dict):
        raise SpecError(f"[tool.xframe] in {path} must be a table, got {type(table).__name__}")
    return table
