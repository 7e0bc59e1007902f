"""Command line: ``python -m pytest_xframe replay DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_xframe", description="pytest-xframe tools")
    sub = parser.add_subparsers(dest="command", required=True)
    replay_parser = sub.add_parser("replay", help="re-run a saved failing case and print the comparison")
    replay_parser.add_argument("case_dir", type=Path, help="the artifacts directory a failure message named")
    args = parser.parse_args(argv)
    from .diagnose.replay import replay

    return replay(args.case_dir)


if __name__ == "__main__":
    sys.exit(main())
