"""The SDK's calls against a running server, with nothing but maestro-client's dependencies.

Usage: python scripts/client_smoke.py HOST:PORT

Run by scripts/client-range.sh in throwaway venvs holding each end of the grpcio range that
maestro-client accepts; it needs no downstream service (its one step calls a closed port).
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from maestro_client import (
    ExecutionFailedError,
    ExecutionState,
    InvalidArgumentError,
    MaestroClient,
    NotFoundError,
    SyncMaestroClient,
)

WORKFLOW = """\
name: smoke
services:
  closed: {type: grpc, endpoint: "127.0.0.1:1"}
steps:
  - {id: call, service: closed, method: Do, retry: {max_attempts: 1}, timeout: 2s}
"""


async def check_async(address: str) -> None:
    async with MaestroClient(address, timeout=30) as client:
        assert not (await client.validate("name: w\n")).valid
        try:
            await client.run(WORKFLOW, {"n": 1})
        except ExecutionFailedError as failed:
            assert failed.step_id == "call" and failed.state == ExecutionState.FAILED
        else:
            raise AssertionError("the run should have failed")
        try:
            await client.get("nope")
        except NotFoundError as missing:
            assert missing.reason == "EXECUTION_NOT_FOUND", missing.reason
        try:
            await client.start("name: w\nservices: {}\nsteps: []\n", {})
        except InvalidArgumentError as invalid:
            assert invalid.reason == "WORKFLOW_INVALID" and invalid.diagnostics
        events = [e async for e in client.execute(WORKFLOW, {})]
        assert events[-1].state == ExecutionState.FAILED


def check_sync(address: str) -> None:
    with SyncMaestroClient(address, timeout=30) as client:
        handle = client.start(WORKFLOW, {})
        try:
            handle.result()
        except ExecutionFailedError as failed:
            assert failed.execution_id == handle.execution_id
        sequences = [e.sequence for e in client.watch(handle.execution_id)]
        assert sequences == list(range(1, len(sequences) + 1))
        assert client.cancel(handle.execution_id).state == ExecutionState.FAILED


def main() -> None:
    address = sys.argv[1]
    asyncio.run(check_async(address))
    check_sync(address)
    print(f"maestro-client works with grpcio {grpc.__version__}")


if __name__ == "__main__":
    main()
