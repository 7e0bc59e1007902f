"""mkdocs hooks: the option reference (``reference/options.md``) is generated at build time from the
plugin's own option definitions, so the page cannot drift from the code.

The page holds a placeholder line; :func:`on_page_markdown` replaces it with
:func:`options_markdown`. Nothing here imports mkdocs or a deep-learning framework: the tests
render the page without building the site.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

#: the checkout being documented comes first on the path, not another installed copy of the package
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAGE = "reference/options.md"
PLACEHOLDER = "<!-- xframe-options -->"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """mkdocs hook: fill the option reference's placeholder."""
    if page.file.src_uri != PAGE:
        return markdown
    if PLACEHOLDER not in markdown:
        raise ValueError(f"{PAGE} lost its placeholder line {PLACEHOLDER!r}")
    return markdown.replace(PLACEHOLDER, options_markdown())


def options_markdown() -> str:
    """The generated part of the option reference, from the plugin's option table
    (``pytest_xframe.plugin.options.OPTIONS``): each check option's description, every flag and ini
    key as ``pytest_addoption`` registers them from it, the policy tables (per example and over
    ``data=``), a detection head's keys and a declaration's keys."""
    return "\n\n".join((check_options_table(), policy_tables(), data_policy_tables(), detection_keys(), declaration_keys(), command_line_tables()))


# -- check options: the marker's, check()'s and a declared model's keywords -------------------------


def check_options_table() -> str:
    from pytest_xframe.check.options import CheckOptions
    from pytest_xframe.plugin.options import BY_NAME

    rows = [(f"`{f.name}`", f"`{f.type}`", f"`{_default(f)!r}`", _where(BY_NAME[f.name]) + BY_NAME[f.name].help)
            for f in dataclasses.fields(CheckOptions)]
    return _section(
        "Check options",
        "Keywords of `@pytest.mark.xframe_parity(...)`, `xframe.check(...)` and a `[[tool.xframe.models]]` "
        "entry (from `pytest_xframe.plugin.options.OPTIONS`; types and defaults from `pytest_xframe.check.options.CheckOptions`).",
        ("option", "type", "default", "notes"),
        rows,
    )


def _where(option: Any) -> str:
    """Where else an option is given: its flag, ini key and pyproject table."""
    places = [f"`{p}`" for p in (option.flag, option.ini) if p] + ([f"`[tool.xframe.{option.pyproject}]`"] if option.pyproject else [])
    return f"Also {', '.join(places)}. " if places else ""


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


# -- policies ------------------------------------------------------------------------------------


def policy_tables() -> str:
    from pytest_xframe.judge.policy import PRECISION_DEFAULTS, SCOPE_KEYS, THRESHOLD_KEYS

    scopes = " and ".join(f'`{k}."<glob>"`' for k in SCOPE_KEYS)
    keys = _section(
        "Policy keys",
        f"Thresholds of a policy table (`[tool.xframe.policy]`, `policy=`), each also allowed under {scopes} "
        "(from `pytest_xframe.judge.policy.THRESHOLD_KEYS`).",
        ("key", "meaning"),
        [(f"`{k}`", v) for k, v in THRESHOLD_KEYS.items()],
    )
    defaults = _section(
        "Defaults by precision",
        "What judges an output when no policy sets a threshold (from `pytest_xframe.judge.policy.PRECISION_DEFAULTS`).",
        ("precision", "thresholds"),
        [(f"`{p}`", ", ".join(f"`{k} = {v}`" for k, v in t.items())) for p, t in PRECISION_DEFAULTS.items()],
    )
    return f"{keys}\n\n{defaults}"


def data_policy_tables() -> str:
    from pytest_xframe.judge.data_policy import DATA_DEFAULTS, DISTRIBUTION_KEYS, RATE_KEYS, STATISTICS

    keys = _section(
        "Policy keys over data",
        "Thresholds over the samples of `data=`, under a policy table's `data` key at any scope "
        f"([Judging on your data](../data.md#thresholds-over-the-data)); statistics: {STATISTICS} "
        "(from `pytest_xframe.judge.data_policy.DISTRIBUTION_KEYS` and `RATE_KEYS`).",
        ("key", "value", "meaning"),
        [(f"`{k}`", "a table of statistic = lower bound", v) for k, v in DISTRIBUTION_KEYS.items()]
        + [(f"`{k}`", "0..1", v) for k, v in RATE_KEYS.items()],
    )
    defaults = _section(
        "Defaults over data by precision",
        "What judges an output over the data where a check has `data=` and no policy sets a threshold "
        "(from `pytest_xframe.judge.data_policy.DATA_DEFAULTS`); a reduced-precision target's per-example "
        "cosine and SNR floors give way to them.",
        ("precision", "thresholds"),
        [(f"`{p}`", ", ".join(f"`{k} = {v}`" for k, v in t.items()) or "none (judged per example)") for p, t in DATA_DEFAULTS.items()],
    )
    return f"{keys}\n\n{defaults}"


def detection_keys() -> str:
    from pytest_xframe.judge.structured import DETECTION_KEYS

    return _section(
        "Detection heads",
        "Keys of one `detections=` head (from `pytest_xframe.judge.structured.DETECTION_KEYS`).",
        ("key", "meaning"),
        [(f"`{k}`", v) for k, v in DETECTION_KEYS.items()],
    )


def declaration_keys() -> str:
    from pytest_xframe.plugin.collect import OWN_KEYS

    keys = ", ".join(f"`{k}`" for k in OWN_KEYS)
    return (
        "## Declared models\n\n"
        f"A `[[tool.xframe.models]]` entry (and `--xframe-model-option`) takes its own keys, {keys}, "
        "and every check option above (from `pytest_xframe.plugin.collect.OWN_KEYS`)."
    )


# -- command line and ini file ---------------------------------------------------------------------


def command_line_tables() -> str:
    import pytest_xframe.plugin

    flags, inis = declared(pytest_xframe.plugin)
    cli = _section(
        "Command-line flags",
        "From `pytest_xframe.plugin.pytest_addoption`; `pytest --help` prints the same.",
        ("flag", "argument", "help"),
        [(f"`{', '.join(names)}`", _argument(attrs), attrs.get("help", "")) for names, attrs in flags],
    )
    ini = _section(
        "ini keys",
        "In `pytest.ini`, `tox.ini`, `setup.cfg` or `[tool.pytest.ini_options]`; from the same hook.",
        ("key", "type", "help"),
        [(f"`{name}`", f"`{kind}`", text + (f" Default: {_code(default)}." if _code(default) else "")) for name, (text, kind, default) in inis.items()],
    )
    return f"{cli}\n\n{ini}"


def declared(plugin: Any) -> tuple[list[tuple[list[str], dict[str, Any]]], dict[str, tuple[str, str, Any]]]:
    """The flags (names, ``addoption`` keywords) and ini keys (help, type, default) that ``plugin``'s
    ``pytest_addoption`` declares, recorded as it declares them."""
    recorder = _Declarations()
    plugin.pytest_addoption(recorder)
    return recorder.flags, recorder.inis


class _Declarations:
    """Stands in for ``pytest.Parser`` and keeps what is declared, as given: the parser pytest builds
    keeps its ini keys in a private attribute, and what its options expose changed within pytest 9."""

    def __init__(self) -> None:
        self.flags: list[tuple[list[str], dict[str, Any]]] = []
        self.inis: dict[str, tuple[str, str, Any]] = {}

    def getgroup(self, name: str, description: str = "", after: str | None = None) -> _Declarations:
        return self

    def addoption(self, *names: str, **attrs: Any) -> None:
        self.flags.append((list(names), attrs))

    def addini(self, name: str, help: str, type: str | None = None, default: Any = None) -> None:
        self.inis[name] = (help, type or "string", default)


# -- Markdown ----------------------------------------------------------------------------------------


def _section(title: str, intro: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [f"## {title}", "", intro, "", _row(header), _row(tuple("---" for _ in header))]
    lines += [_row(r) for r in rows]
    return "\n".join(lines)


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(_cell(str(c)) for c in cells) + " |"


def _cell(text: str) -> str:
    """One table cell: on one line, a ``|`` outside code spans escaped (inside them it is literal)."""
    parts = text.replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _argument(attrs: dict[str, Any]) -> str:
    """What a flag takes: its metavar, "(switch)" for a flag without a value; "repeatable" for a list."""
    action = attrs.get("action")
    if action in ("store_true", "store_false"):
        return "(switch)"
    text = _code(attrs.get("metavar") or attrs.get("dest", "").upper())
    return f"{text}, repeatable" if action == "append" else text


def _code(value: Any) -> str:
    """A value as inline code; nothing for an unset one."""
    if value is None or value == "" or value == []:
        return ""
    return f"`{value}`"
