"""The onboarding example end to end: start its four services on loopback, run the workflow
once successfully and once with the email step failing for good (its compensations undo the
subscription and the CRM contact), then stop the services.

Usage: python scripts/demo.py   (make demo)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "onboarding"
SERVICES = EXAMPLE / "services"
BIN = Path(sys.executable).parent


@contextmanager
def service(name: str, command: list[str]) -> Iterator[int]:
    """Run a service until the block ends; yields the port it printed as `READY <port>`."""
    env = dict(os.environ, PYTHONPATH=str(SERVICES))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=SERVICES, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"{name} did not start (it printed {line!r})")
        yield int(line.split()[1])
    finally:
        process.terminate()
        process.wait(timeout=10)


def python_service(name: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "demo_services", name, "--port", "0", *flags]


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


def main() -> None:
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
    if (ok, undone) != (0, 2):
        raise SystemExit(f"unexpected exit codes {ok} and {undone} (expected 0 and 2)")
    print("\nDemo finished: one completed saga, one compensated saga.")


if __name__ == "__main__":
    main()
