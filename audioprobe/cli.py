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
    "audioprobe.listening.cli",
)


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def emit(obj: Any) -> None:
    """Print one JSON object on stdout: the contract of every inspection command. ASCII only: U+2028 and
    friends from a program's output would split the line for a line-based reader."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    print(json.dumps(obj, ensure_ascii=True, default=str))


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes end in one line naming the option and the reason, and where to read more."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _whole_number_at_least(minimum: int, words: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {words}, got {value}")
        return value
    return parse


positive_int = _whole_number_at_least(1, "at least 1")
non_negative_int = _whole_number_at_least(0, "0 or more")


def build_parser() -> argparse.ArgumentParser:
    from importlib import metadata

    parser = OneLineParser(prog="audioprobe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"audioprobe {metadata.version('audioprobe')}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
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
    from audioprobe.settings import ConfigError, get_settings

    try:
        get_settings()  # a bad config file or variable is named before any command starts work
        result = args.func(args)
    except (UserError, ConfigError) as exc:
        print(f"audioprobe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("audioprobe: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # `python -m audioprobe.cli`: run the importable module's main, one UserError class
    from audioprobe.cli import main as _main

    sys.exit(_main())
