"""The order example through `maestro serve` (the second half of `make demo`).

Starts the inventory and billing services and a server, then runs two orders:
1. three items reserved (a for_each step), a cooling-off `sleep`, then the payment as a
   sub-workflow (a child execution `ord-1001:charge`): the card charged, and the payment
   provider's confirmation delivered as the signal `payment_confirmed` once the payment waits
   for it (the SDK follows the order's events, then the payment's, and signals on
   STEP_WAITING);
2. an order with a sold-out webcam: its reservation fails for good, and the two items reserved
   before it are released, last first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from demo_processes import BIN, ROOT, maestro_serve, python_service, service

from maestro_client import EventType, ExecutionState, SyncMaestroClient, output
from maestro_server.cli.progress import ProgressPrinter
from maestro_server.cli.remote import event_from_message

EXAMPLE = ROOT / "examples" / "order"
CONFIRMATION = {"reference": "psp-4242"}
"""What the payment provider's webhook would carry."""


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT))


def maestro(*args: str) -> int:
    """Run the `maestro` command line as a user would, showing the command first."""
    print(f"$ maestro {' '.join(args)}", flush=True)
    return subprocess.run([str(BIN / "maestro"), *args], cwd=ROOT, check=False).returncode


def confirm_when_waiting(server: str, execution_id: str) -> ExecutionState:
    """Follow the execution's events to its end, printing them as `maestro execute` does; when
    it starts a child execution (the payment), follow that one too and deliver the payment
    confirmation when it waits for it. The order's final state."""
    printer = ProgressPrinter(jsonl=False)
    state = ExecutionState.UNSPECIFIED
    with SyncMaestroClient(server) as client:
        for message in client.watch(execution_id):
            printer.show(event_from_message(message))
            state = message.state
            if message.type == EventType.STEP_WAITING and message.child_execution_id:
                print(f"  ↳ the payment runs as {message.child_execution_id}:", flush=True)
                _confirm_payment(client, message.child_execution_id, printer)
            if state == ExecutionState.COMPLETED:
                print(json.dumps(output(message), indent=2, sort_keys=True), flush=True)
    return state


def _confirm_payment(client: SyncMaestroClient, child: str, printer: ProgressPrinter) -> None:
    """Follow the payment's execution until it waits for the confirmation, and send it."""
    for message in client.watch(child):
        printer.show(event_from_message(message))
        if message.type == EventType.STEP_WAITING and message.signal_name == ("payment_confirmed"):
            payload = json.dumps(CONFIRMATION)
            print(
                f"  → the payment provider confirms: client.signal_execution("
                f"{message.execution_id!r}, 'payment_confirmed', {payload})",
                flush=True,
            )
            # The provider's event id as the signal's: a resent webhook changes nothing.
            client.signal_execution(
                message.execution_id,
                "payment_confirmed",
                CONFIRMATION,
                signal_id="psp-event-4242",
            )
            return


def main() -> tuple[int, int]:
    """Run both orders; the exit codes `maestro` gave them (0 and 2 expected)."""
    with (
        service("inventory", python_service("inventory")) as inventory,
        service("billing", python_service("billing")) as billing,
        tempfile.TemporaryDirectory() as scratch,
        maestro_serve(
            {
                "inventory_service": f"127.0.0.1:{inventory}",
                "billing_service": f"127.0.0.1:{billing}",
            },
            Path(scratch) / "maestro.db",
        ) as server,
    ):
        workflow = shown(EXAMPLE / "workflow.yaml")
        print(
            "\n=== 3. an order through maestro serve: reserve 3 items, cool off for 1 s,"
            " then the payment (a sub-workflow): charge the card, await the payment provider's"
            " confirmation ===",
            flush=True,
        )
        started = maestro(
            "execute", workflow, "--server", server, "--no-wait",
            "--input-file", shown(EXAMPLE / "input.json"), "--execution-id", "ord-1001",
        )  # fmt: skip
        if started != 0:
            raise SystemExit(f"the order did not start (exit code {started})")
        state = confirm_when_waiting(server, "ord-1001")
        completed = 0 if state == ExecutionState.COMPLETED else 2
        print(f"({state.name.lower()})", flush=True)
        print(
            "\n=== 4. an order with a sold-out webcam: the items reserved before it are"
            " released, last first ===",
            flush=True,
        )
        compensated = maestro(
            "execute", workflow, "--server", server,
            "--input-file", shown(EXAMPLE / "input-out-of-stock.json"),
            "--execution-id", "ord-1002",
        )  # fmt: skip
        print(f"(exit code {compensated})", flush=True)
    return completed, compensated


if __name__ == "__main__":
    sys.exit(0 if main() == (0, 2) else 1)
