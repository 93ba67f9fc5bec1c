"""Messages for the person watching a run: to the Prefect UI when inside a flow or task run (whose
console handler also prints them), else straight to stderr. Flows run with log_prints=True, which turns
print() into INFO logs, below the WARNING level the CLI shows: a warning must not vanish that way."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    try:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        try:
            get_run_logger().warning(message)
            return
        except MissingContextError:
            pass
    except ImportError:
        pass
    sys.__stderr__.write(message + "\n")
    sys.__stderr__.flush()
