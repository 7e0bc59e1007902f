"""Command line: ``python -m pytest_xframe replay DIR`` and ``python -m pytest_xframe lock-diff LOCK``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_xframe", description="pytest-xframe tools")
    sub = parser.add_subparsers(dest="command", required=True)
    replay_parser = sub.add_parser("replay", help="re-run a saved failing case and print the comparison")
    replay_parser.add_argument("case_dir", type=Path, help="the artifacts directory a failure message named")
    lock_parser = sub.add_parser("lock-diff", help="list the packages whose installed version differs from a lock (exit 1 if any)")
    lock_parser.add_argument("lock", type=Path, help="a pip constraints file of name==version lines")
    args = parser.parse_args(argv)
    if args.command == "lock-diff":
        return lock_diff(args.lock)
    from .diagnose.replay import replay

    return replay(args.case_dir)


def lock_diff(path: Path) -> int:
    """Print one line per moved package; 0 when the stack is the locked one, 1 when it moved, 2 when
    the lock cannot be read."""
    from .lockfile import describe, moved_since, read_lock

    try:
        moved = moved_since(read_lock(path))
    except OSError as exc:
        print(f"cannot read the lock {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(describe(path, moved).split(": ", 1)[0] + ("" if moved else "."))
    for m in moved:
        print(f"  {m}")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
