"""Issue 13, item 7: how long `maestro` takes to start, and to run the onboarding example.

Each command is a fresh process, as a user runs it (`python -m maestro_server …` of this
checkout), timed wall clock from spawn to exit; the figure is the median of `--runs` runs after
one untimed run that leaves Python's bytecode caches written (the environment may say
PYTHONDONTWRITEBYTECODE; a user's installed copy has its caches). CPU seconds of the process
are reported beside the wall time: on a machine shared with other work they say what the
command costs when the wall time says mostly how busy the machine was.

- `maestro --help`
- `maestro validate examples/onboarding/workflow.yaml`
- `maestro execute` of the onboarding example against the example services (each run with its
  own email address, so every run is a new user)

Usage: python bench/startup.py [--runs 10]   (starts the example services itself)
       python bench/startup.py --against DIR   (also another checkout, e.g. a `git worktree`
       of main: both measured in turns, run by run, so that a change is seen side by side)
From bench/run.py: measure(services.endpoints) with the services it already runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = "examples/onboarding/workflow.yaml"
INPUT = json.loads((ROOT / "examples/onboarding/input.json").read_text())

TARGETS = {"help": 0.15, "validate": 0.30, "execute": 0.40}
"""Issue 13's wall-time limits, seconds."""


def _environment(root: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _timed(arguments: Sequence[str], root: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `python -m maestro_server ARGUMENTS` of the checkout
    at `root`; exit 0 or raise."""
    env = _environment(root)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "maestro_server", *arguments],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"maestro {' '.join(arguments)}: exit {done.returncode}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _execute_arguments(endpoints: Mapping[str, str]) -> list[str]:
    data = dict(INPUT, email=f"startup-{uuid.uuid4().hex[:10]}@example.com")
    flags = [f"--endpoint={name}={address}" for name, address in sorted(endpoints.items())]
    return ["execute", WORKFLOW, "--input", json.dumps(data), *flags]


def measure(endpoints: Mapping[str, str] | None, runs: int = 10) -> dict[str, Any]:
    """Median wall and CPU seconds per command; `execute` only with the services' endpoints.

    The commands take turns run by run, so a change in the machine's load falls on all alike.
    """
    return measure_checkouts(endpoints, runs, [ROOT])[0]


def measure_checkouts(
    endpoints: Mapping[str, str] | None, runs: int, roots: Sequence[Path]
) -> list[dict[str, Any]]:
    """`measure` of each checkout, all measured in turns (each command of each checkout, then
    the next run): figures per checkout, in the order given."""
    commands: dict[str, Any] = {
        "help": lambda: ["--help"],
        "validate": lambda: ["validate", WORKFLOW],
    }
    if endpoints is not None:
        commands["execute"] = lambda: _execute_arguments(endpoints)
    samples: dict[tuple[Path, str], list[tuple[float, float]]] = {
        (root, name): [] for root in roots for name in commands
    }
    load_before = os.getloadavg()[0]
    for root in roots:  # untimed: bytecode caches, the services' warm-up
        for arguments in commands.values():
            _timed(arguments(), root)
    for _ in range(runs):
        for name, arguments in commands.items():
            for root in roots:
                samples[root, name].append(_timed(arguments(), root))
    load = [load_before, os.getloadavg()[0]]
    found = []
    for root in roots:
        figures: dict[str, Any] = {}
        for name in commands:
            pairs = samples[root, name]
            figures[f"{name}_s"] = statistics.median(wall for wall, _ in pairs)
            figures[f"{name}_min_s"] = min(wall for wall, _ in pairs)
            figures[f"{name}_cpu_s"] = statistics.median(cpu for _, cpu in pairs)
        figures["runs"] = runs
        figures["load_average"] = load
        found.append(figures)
    return found


def rows(figures: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(target, median wall, median CPU, PASS/FAIL) per command measured."""
    names = {
        "help": "`maestro --help`",
        "validate": "`maestro validate` of the onboarding workflow",
        "execute": "`maestro execute` of the onboarding workflow",
    }
    found = []
    for name, limit in TARGETS.items():
        if f"{name}_s" not in figures:
            continue
        wall = figures[f"{name}_s"]
        found.append(
            (
                f"{names[name]}: wall ≤ {limit:g} s",
                f"{wall:.3f} s",
                f"{figures[f'{name}_cpu_s']:.3f} s",
                "PASS" if wall <= limit else "FAIL",
            )
        )
    return found


def table(figures: Mapping[str, Any]) -> str:
    """The rows as Markdown, with the machine's load while they were measured."""
    lines = ["| CLI start-up (median) | wall | CPU | result |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows(figures)]
    load = ", ".join(f"{value:.1f}" for value in figures["load_average"])
    lines.append(f"\n{figures['runs']} runs each; 1-minute load average before, after: {load}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-execute", action="store_true", help="skip execute (no services)")
    parser.add_argument(
        "--against", type=Path, metavar="DIR", help="another checkout, measured in turns with this"
    )
    args = parser.parse_args()
    roots = [ROOT] if args.against is None else [args.against.resolve(), ROOT]
    if args.no_execute:
        found = measure_checkouts(None, args.runs, roots)
    else:
        sys.path.insert(0, str(ROOT / "examples" / "onboarding" / "services"))
        from demo_services.fleet import fleet  # noqa: PLC0415 - only when run on its own

        with fleet() as services:
            found = measure_checkouts(services.endpoints, args.runs, roots)
    for root, figures in zip(roots, found, strict=True):
        if len(roots) > 1:
            print(f"\n{root}:")
        print(table(figures))


if __name__ == "__main__":
    main()
