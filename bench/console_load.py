"""How fast the console's pages load with many executions stored (SQLite).

Usage: python bench/console_load.py [--executions 10000]

Fills a scratch SQLite store with finished executions of the onboarding workflow (a few events
each, states mixed as in a busy system), starts `maestro serve --http-port 0` on it, and times
in headless Chromium: the executions page until its first page of rows shows, the same filtered
by a rare state, and one execution's page until its graph and event log show. Also the
ListExecutions call alone over HTTP. Prints a JSON summary; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "onboarding" / "services")]

from maestro_server.definition import load_workflow_file  # noqa: E402
from maestro_server.model.execution import ErrorInfo, Event, EventType, ExecutionState  # noqa: E402
from maestro_server.store.base import ExecutionRecord, ExecutionSource, append_event  # noqa: E402
from maestro_server.store.sqlite import SqliteStore  # noqa: E402
from tests.api.conftest import maestro_serve  # noqa: E402

WORKFLOW = ROOT / "examples" / "onboarding" / "workflow.yaml"


async def fill(path: Path, count: int) -> None:
    """`count` finished executions: 85% completed, 12% compensated, 3% compensation failed."""
    workflow = load_workflow_file(WORKFLOW)
    store = await SqliteStore(str(path)).open()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    steps = tuple(s.id for s in workflow.steps)
    for n in range(count):
        execution_id = f"load-{n:05d}"
        at = start + timedelta(seconds=n)
        await store.create_execution(
            ExecutionRecord(
                execution_id,
                workflow.name,
                workflow.version,
                workflow.hash,
                {"email": f"user{n}@example.com"},
                at,
                steps,
                ExecutionSource(workflow.source, workflow.path, {}),
            )
        )
        events: list[tuple[EventType, ExecutionState, str, ErrorInfo | None]] = [
            (EventType.WORKFLOW_STARTED, ExecutionState.RUNNING, "", None)
        ]
        if n % 100 < 85:
            events += [(EventType.STEP_STARTED, ExecutionState.RUNNING, s, None) for s in steps[:1]]
            events += [(EventType.WORKFLOW_COMPLETED, ExecutionState.COMPLETED, "", None)]
        else:
            error = ErrorInfo("INVALID_ARGUMENT", "refused", "email_service")
            last = steps[-1]
            events += [
                (EventType.STEP_STARTED, ExecutionState.RUNNING, last, None),
                (EventType.STEP_FAILED, ExecutionState.COMPENSATING, last, error),
            ]
            end = (
                (EventType.WORKFLOW_COMPENSATED, ExecutionState.COMPENSATED)
                if n % 100 < 97
                else (EventType.WORKFLOW_FAILED, ExecutionState.COMPENSATION_FAILED)
            )
            events += [(*end, last, error)]
        for sequence, (kind, state, step, err) in enumerate(events, start=1):
            await append_event(
                store,
                Event(
                    execution_id,
                    sequence,
                    at + timedelta(milliseconds=sequence),
                    kind,
                    state,
                    step_id=step,
                    attempt=1 if step else 0,
                    error=err,
                ),
            )
    await store.aclose()


def measure(url: str, executions: int) -> dict[str, float]:
    """Milliseconds from navigation to the page's content, median of 5 loads each."""
    results: dict[str, list[float]] = {"list": [], "list_filtered": [], "execution": [], "rpc": []}
    newest = f"load-{executions - 1:05d}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for _ in range(5):
            for name, path, ready in (
                ("list", "/#/executions", f"[data-testid='execution-row-{newest}']"),
                (
                    "list_filtered",
                    "/#/executions?state=COMPENSATION_FAILED",
                    "[data-state='COMPENSATION_FAILED'] a",
                ),
                ("execution", f"/#/executions/{newest}", "[data-testid='event-row-3']"),
            ):
                page.goto("about:blank")
                began = time.perf_counter()
                page.goto(url + path)
                page.locator(ready).first.wait_for(timeout=30_000)
                if name == "execution":
                    page.get_by_test_id("step-node-create_user").wait_for()
                results[name].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            reply = httpx.post(
                f"{url}/maestro.v1.Orchestrator/ListExecutions", json={"pageSize": 50}, timeout=30
            )
            reply.raise_for_status()
            results["rpc"].append((time.perf_counter() - began) * 1000)
        browser.close()
    return {name: round(statistics.median(values), 1) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "maestro.db"
        began = time.perf_counter()
        asyncio.run(fill(db, args.executions))
        filled = time.perf_counter() - began
        with maestro_serve("--http-port", "0", "--store", f"sqlite:///{db}") as server:
            serving = next(e for e in server.log if e["event"] == "serving")
            figures = measure(f"http://127.0.0.1:{serving['http_port']}", args.executions)
    summary = {"executions": args.executions, "fill_seconds": round(filled, 1), "ms": figures}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
