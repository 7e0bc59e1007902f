"""Refresh the lock of a tox environment: install its packages afresh without the lock, then freeze
them into ``locks/<env>.txt``.

    python tools/lock.py                  # py311-current
    python tools/lock.py py311-tf215      # or any env whose deps read XFRAME_LOCK_FILE

The env's deps read the lock through ``XFRAME_LOCK_FILE`` (tox.ini); this script points it at an
empty file, recreates the env with ``tox -r --notest``, and writes ``pip freeze`` of it (the
project itself left out, torch without its local ``+cpu`` label). It prints what moved. Then run the
suite on the new lock before committing it (the docs' Development page says what).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HEADER = """\
# The tested stack of tox env {env}: pip constraints, the exact versions the suite passed on
# (committed only after it passed on them). {users} install from it (`pip install -c`).
# Refresh: `python tools/lock.py {env}` (see the docs' Development page for what to run before committing).
# torch is pinned without its local label (+cpu): pip takes the CPU wheel where one is on disk.
"""
USERS = {"py311-current": "The README's commands, .ci/run, `tox -e py311-current` and `tox -e examples`"}


def tox() -> list[str]:
    """tox from this interpreter when it has it, else the one on PATH."""
    probe = subprocess.run([sys.executable, "-m", "tox", "--version"], capture_output=True, check=False)
    return [sys.executable, "-m", "tox"] if probe.returncode == 0 else ["tox"]


def frozen(env: str) -> list[str]:
    python = ROOT / ".tox" / env / "bin" / "python"
    out = subprocess.run([str(python), "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True).stdout
    lines = []
    for line in out.splitlines():
        if not line or line.startswith(("#", "-e")) or line.lower().startswith("pytest-xframe"):
            continue
        lines.append(re.sub(r"^(torch==[^+\s]+)\+\S+", r"\1", line))
    return lines


def refresh(env: str) -> int:
    empty = ROOT / ".tox" / "empty-constraints.txt"
    empty.parent.mkdir(exist_ok=True)
    empty.write_text("")
    built = subprocess.run([*tox(), "-e", env, "-r", "--notest"], cwd=ROOT, env={**os.environ, "XFRAME_LOCK_FILE": str(empty)}, check=False)
    if built.returncode:
        print(f"tox could not build {env} without its lock", file=sys.stderr)
        return built.returncode
    from pytest_xframe.lockfile import canonical, moved_since, read_lock

    path = ROOT / "locks" / f"{env}.txt"
    old = read_lock(path) if path.exists() else {}
    lines = frozen(env)
    path.write_text(HEADER.format(env=env, users=USERS.get(env, f"`tox -e {env}`")) + "\n".join(lines) + "\n")
    new = read_lock(path)
    for m in moved_since(old, new):
        print(f"  {m}")
    for name in sorted(set(new) - {canonical(n) for n in old}):
        print(f"  {name} (new) {new[name]}")
    print(f"wrote {path.relative_to(ROOT)}: {len(lines)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(max([refresh(env) for env in sys.argv[1:] or ["py311-current"]]))
