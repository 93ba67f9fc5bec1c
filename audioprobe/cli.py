"""The `audioprobe` command. Each area registers its own subcommands; heavy imports stay inside handlers."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

# module path -> its `register(subparsers)` adds that area's commands
COMMAND_MODULES = (
    "sandbox.cli",
    "tasks.generation.cli",
    "tasks.probesets.cli",
    "tasks.judges.cli",
    "flows.cli",
)


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def emit(obj: Any) -> None:
    """Print one JSON object on stdout: the contract of every inspection command."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    print(json.dumps(obj, ensure_ascii=False, default=str))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audioprobe", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # an area not built yet must not break the others
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = list(argv)  # the command as typed: a run that stops early prints how to resume it
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"audioprobe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("audioprobe: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # `python -m audioprobe.cli`: run the importable module's main, one UserError class
    from audioprobe.cli import main as _main

    sys.exit(_main())
