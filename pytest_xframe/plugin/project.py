"""The project's own table in pyproject.toml, ``[tool.xframe]``: policies, declared models, the baseline.

pytest's ini options are flat strings; nested settings (a policy per output glob, a list of models)
live in this table instead, read once per run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..judge.baseline import DEFAULT_FILE, Settings


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


def settings_from(config: Any) -> Settings:
    """Where the file is: ``--xframe-baseline`` (from the current directory) > ini
    ``xframe_baseline`` (from the ini file's directory) > ``[tool.xframe.baseline] path`` (from
    pyproject.toml's) > ``<rootdir>/xframe-baseline.json``."""
    table = baseline_table(config)
    cli, ini = config.getoption("xframe_baseline"), str(config.getini("xframe_baseline")).strip()
    inipath = getattr(config, "inipath", None)
    if cli:
        path = Path(config.invocation_params.dir) / cli
    elif ini:
        path = (Path(inipath).parent if inipath else Path(config.rootpath)) / ini
    elif "path" in table:
        path = pyproject_path(config).parent / table["path"]  # type: ignore[union-attr]
    else:
        path = Path(config.rootpath) / DEFAULT_FILE
    return Settings(path=path.resolve(), update=bool(config.getoption("xframe_baseline_update")))


def baseline_table(config: Any) -> dict[str, Any]:
    """``[tool.xframe.baseline]``, checked: ``path`` (a string), ``drift_factor`` (a number > 1)."""
    table = tool_table(config).get("baseline", {})
    where = "[tool.xframe.baseline] in pyproject.toml"
    if not isinstance(table, dict):
        raise SpecError(f"{where} must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - {"path", "drift_factor"})
    if unknown:
        raise SpecError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}", hint="valid keys: path, drift_factor")
    if "path" in table and not (isinstance(table["path"], str) and table["path"]):
        raise SpecError(f"path in {where} must be a file name, got {table['path']!r}")
    return table
