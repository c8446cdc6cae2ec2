"""Signals on the command line: `execute --signal NAME=JSON` and `executions signal ID NAME`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from maestro_server.cli.json_args import parse_object, read_object
from maestro_server.errors import InvalidInputError
from maestro_server.model.signals import SIGNAL_NAME, Signal


def add_signal_flag(parser: Any) -> None:
    """`execute --signal NAME=JSON`, repeatable."""
    parser.add_argument(
        "--signal",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a signal for the run's `wait` steps, its sub-workflows' included, kept from the "
        "start (repeatable, in order)",
    )


def add_signal_command(commands: Any) -> argparse.ArgumentParser:
    """`executions signal ID NAME [--data JSON | --data-file FILE] [--signal-id ID]`."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "signal", help="send a signal to an execution (a `wait` step takes its payload)"
    )
    sub.add_argument("execution_id")
    sub.add_argument("name", help="the signal's name, as a `wait` step names it")
    data = sub.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="JSON", help="the payload as inline JSON (an object)")
    data.add_argument("--data-file", metavar="FILE", help="the payload as a JSON file")
    sub.add_argument(
        "--signal-id", default="", help="the same id again is the same signal (default: a new one)"
    )
    return sub


def read_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The payload of `--data` or `--data-file` ({} when neither is given)."""
    return read_object(args.data, "--data", args.data_file, "payload")


def parse_signals(values: Sequence[str], execution_id: str) -> list[Signal]:
    """`--signal NAME=JSON` flags as the run's signals, in the order given."""
    signals = []
    for position, value in enumerate(values, start=1):
        name, equals, text = value.partition("=")
        if not equals or not SIGNAL_NAME.fullmatch(name):
            raise InvalidInputError(
                f"--signal: expected NAME=JSON with NAME a signal name (a letter, then letters, "
                f"digits, '_', '-', '.'), not {value[:60]!r}"
            )
        source = f"--signal {name}"
        payload = parse_object(text or "{}", source)
        now = datetime.now(UTC)
        signals.append(Signal(execution_id, name, f"cli-{position}", payload, now, position))
    return signals
