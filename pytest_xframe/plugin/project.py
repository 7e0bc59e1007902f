"""The project's own table in pyproject.toml, ``[tool.xframe]``: policies, declared models, the baseline.

pytest's ini options are flat strings; nested settings (a policy per output glob, a list of models)
live in this table instead, read once per run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..errors import SpecError, did_you_mean
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
    tools = data.get("tool", {})
    for name in tools:
        if name != "xframe" and _looks_like_xframe(name):
            raise SpecError(f"[tool.{name}] in {path} is not a table pytest-xframe reads (did you mean [tool.xframe]?)",
                            hint="pytest-xframe reads [tool.xframe] with its tables policy, baseline and [[tool.xframe.models]]")
    table = tools.get("xframe", {})
    if not isinstance(table, dict):
        raise SpecError(f"[tool.xframe] in {path} must be a table, got {type(table).__name__}")
    _check_keys(table, path)
    return table


def _looks_like_xframe(name: str) -> bool:
    """``[tool.xframe-models]``, ``[tool.xfame]``: a table meant for pytest-xframe under another name."""
    return name[:1].lower() == "x" and (name.lower().replace("-", "").replace("_", "").startswith("xframe") or bool(did_you_mean(name, ["xframe"])))


#: the keys of ``[tool.xframe]``: its tables
TABLES = {"policy": "a table of thresholds ([tool.xframe.policy])", "models": "declared models ([[tool.xframe.models]])",
          "baseline": "the baseline file and drift factor ([tool.xframe.baseline])"}


def _check_keys(table: dict[str, Any], path: Path) -> None:
    """Every key of ``[tool.xframe]`` is one of its tables; a check option there says where it goes."""
    import difflib

    from .options import BY_NAME, OPTION_NAMES

    for key in table:
        if key in TABLES:
            continue
        close = [] if key in BY_NAME else difflib.get_close_matches(key, [*TABLES, *OPTION_NAMES], n=1, cutoff=0.6)
        option = BY_NAME.get(key) or (BY_NAME.get(close[0]) if close else None)
        hint = "valid keys: " + "; ".join(f"{k}: {what}" for k, what in TABLES.items())
        if option is not None and option.check:
            where = f"the ini file ({option.ini} in [tool.pytest.ini_options])" if option.ini else "a marker, check() or a [[tool.xframe.models]] entry"
            hint = f"set {option.name} project-wide in {where}; " + hint
        raise SpecError(f"unknown key {key!r} in [tool.xframe] of {path.name}" + (f" (did you mean {close[0]!r}?)" if close else ""), hint=hint)


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
        raise SpecError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}" + did_you_mean(unknown[0], ["path", "drift_factor"]),
                        hint="valid keys: path, drift_factor")
    if "path" in table and not (isinstance(table["path"], str) and table["path"]):
        raise SpecError(f"path in {where} must be a file name, got {table['path']!r}")
    return table
