"""The tested stack against the installed one: which packages moved since a lock file.

A lock is a pip constraints file of ``name==version`` lines (what ``pip freeze`` writes). A suite
that passed on the lock and fails on a newer stack ("latest") should say what moved; this module
reads the lock and the installed distributions' metadata (nothing is imported) and lists the
differences. Used by ``--xframe-lock`` (report header, terminal summary, JSON report) and by
``python -m pytest_xframe lock-diff``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*([^\s;#]+)")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Tf_Keras`` and ``tf-keras`` are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` line; comments, options (``-c``,
    ``--hash``) and lines without an exact pin are skipped. OSError when the file cannot be read."""
    pins = {}
    for line in Path(path).read_text().splitlines():
        found = _PIN.match(line)
        if found:
            pins[canonical(found.group(1))] = found.group(2)
    return pins


def _same(locked: str, installed: str) -> bool:
    """Versions equal, a local label (``2.13.0+cpu``) matching a lock without one."""
    return installed == locked or installed.split("+", 1)[0] == locked


@dataclass(frozen=True)
class Moved:
    """One locked distribution whose installed version differs (``installed`` None: absent)."""

    name: str
    locked: str
    installed: str | None

    def __str__(self) -> str:
        return f"{self.name} {self.locked} -> {self.installed or 'absent'}"


def moved_since(lock: dict[str, str], installed: dict[str, str] | None = None) -> list[Moved]:
    """The locked distributions whose installed version is another (or that are not installed),
    sorted by name; ``installed`` defaults to this environment's distributions."""
    if installed is None:
        installed = installed_versions()
    return [
        Moved(name, version, installed.get(name))
        for name, version in sorted(lock.items())
        if installed.get(name) is None or not _same(version, installed[name])
    ]


def installed_versions() -> dict[str, str]:
    """``{canonical name: version}`` of every distribution installed here (metadata only)."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        # the first on sys.path is the one imported (as metadata.version says); a later one is a
        # copy another package put on the path (setuptools adds its vendored packages' metadata)
        if dist.metadata["Name"]:
            found.setdefault(canonical(dist.metadata["Name"]), dist.version)
    return found


def describe(path: Path, moved: list[Moved]) -> str:
    """One line for a report header or summary."""
    if not moved:
        return f"stack as locked in {path}"
    return f"{len(moved)} package(s) moved since {path}: " + ", ".join(map(str, moved))
