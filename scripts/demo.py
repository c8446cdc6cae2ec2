"""The examples end to end.

The onboarding example: start its four services on loopback, run the workflow once
successfully and once with the email step failing for good (its compensations undo the
subscription and the CRM contact). Then the order example through `maestro serve` (see
demo_order.py): one order whose payment is confirmed by a signal, one that runs out of stock
and releases what it had reserved. The services and the server are stopped after.

Usage: python scripts/demo.py   (make demo)
"""

from __future__ import annotations

import subprocess

import demo_order
from demo_processes import BIN, SERVICES, python_service, service

EXAMPLE = SERVICES.parent


def execute(endpoints: dict[str, str], title: str) -> int:
    print(f"\n=== {title} ===", flush=True)
    command = [
        str(BIN / "maestro"),
        "execute",
        str(EXAMPLE / "workflow.yaml"),
        "--input-file",
        str(EXAMPLE / "input.json"),
    ]
    for name, address in endpoints.items():
        command += ["--endpoint", f"{name}={address}"]
    code = subprocess.run(command, check=False).returncode
    print(f"(exit code {code})", flush=True)
    return code


def onboarding() -> tuple[int, int]:
    """Run the onboarding saga twice; the exit codes (0 and 2 expected)."""
    node = ["node", str(SERVICES / "auth-node" / "server.js"), "--port", "0"]
    with (
        service("auth (Node.js)", node) as auth,
        service("billing", python_service("billing")) as billing,
        service("crm", python_service("crm")) as crm,
    ):
        endpoints = {
            "auth_service": f"127.0.0.1:{auth}",
            "billing_service": f"127.0.0.1:{billing}",
            "crm_service": f"http://127.0.0.1:{crm}",
        }
        with service("email", python_service("email")) as email:
            ok = execute(
                {**endpoints, "email_service": f"127.0.0.1:{email}"}, "1. everything works"
            )
        failing = python_service("email", "--fail", "SendTemplate=INVALID_ARGUMENT")
        with service("email (failing)", failing) as email:
            undone = execute(
                {**endpoints, "email_service": f"127.0.0.1:{email}"},
                "2. the email service rejects the welcome email: compensations run",
            )
    return ok, undone


def main() -> None:
    codes = {"onboarding": onboarding(), "order": demo_order.main()}
    for example, got in codes.items():
        if got != (0, 2):
            raise SystemExit(f"{example}: unexpected exit codes {got} (expected 0 and 2)")
    print(
        "\nDemo finished: one completed saga, one compensated saga;"
        " one order paid, one order released."
    )


if __name__ == "__main__":
    main()
