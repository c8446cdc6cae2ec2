"""Whole numbers stay integers wherever Maestro writes JSON, though Struct carries doubles.

An HTTP service answers `{"id": 3}`; a gRPC service echoes that id back in a Struct field; a
third call builds a URL from the echoed id. Run by `maestro execute` in-process and through
`maestro serve`, every JSON the user sees says 3, never 3.0, and the URL is `/invoices/3`.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor_pb2

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from tests.api.conftest import ServerProcess, maestro_serve
from tests.api.test_http import http_port
from tests.conftest import maestro
from tests.transports.http_server import ScriptedHttp, scripted_http
from tests.transports.servers import echo_server

OUTPUT = {"id": 3, "ratio": 1.5, "echoed": 3, "negative": -2, "listed": [1, 2.5]}


def workflow(http: str, grpc: str) -> str:
    return f"""\
name: numbers
services:
  api: {{type: http, endpoint: "{http}"}}
  echo: {{type: grpc, endpoint: "{grpc}"}}
steps:
  - id: create
    service: api
    method: POST /invoices
  - id: echo
    service: echo
    method: testing.v1.EchoService/Echo
    input:
      extra: {{id: "{{{{ .steps.create.output.id }}}}", negative: -2, listed: [1, 2.5]}}
  - id: fetch
    service: api
    method: "GET /invoices/{{{{ .steps.echo.output.extra.id }}}}"
output:
  id: "{{{{ .steps.create.output.id }}}}"
  ratio: "{{{{ .steps.create.output.ratio }}}}"
  echoed: "{{{{ .steps.echo.output.extra.id }}}}"
  negative: "{{{{ .steps.echo.output.extra.negative }}}}"
  listed: "{{{{ .steps.echo.output.extra.listed }}}}"
"""


@pytest.fixture
def http() -> Iterator[ScriptedHttp]:
    with scripted_http() as server:
        server.answer("POST /invoices", 200, {"id": 3, "ratio": 1.5})
        server.answer("GET /invoices/3", 200, {"id": 3})
        yield server


@pytest.fixture
async def workflow_file(http: ScriptedHttp, tmp_path: Path) -> AsyncIterator[Path]:
    async with echo_server() as (address, _):
        path = tmp_path / "numbers.yaml"
        path.write_text(workflow(http.url, address))
        yield path


def no_doubles(text: str) -> None:
    """No whole number printed with a fraction anywhere in `text`."""
    assert not re.search(r"(?<![\w.])\d+\.0(?![\w.])", text), text


def invoice_urls(http: ScriptedHttp) -> list[str]:
    return [r.path for r in http.received if r.method == "GET"]


async def test_execute_prints_integers(workflow_file: Path, http: ScriptedHttp) -> None:
    """`maestro execute`: the output on stdout, and the URL built from the echoed id."""
    result = await asyncio.to_thread(maestro, "execute", workflow_file)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == OUTPUT
    no_doubles(result.stdout)
    assert invoice_urls(http) == ["/invoices/3"]


async def test_events_jsonl_prints_integers(workflow_file: Path) -> None:
    """`--events jsonl`: each step's output and the workflow's, through the proto's Structs."""
    result = await asyncio.to_thread(maestro, "execute", workflow_file, "--events", "jsonl")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    outputs = {e.get("stepId", ""): e["output"] for e in events if "output" in e}
    assert outputs["create"] == {"id": 3, "ratio": 1.5}
    assert outputs["echo"]["extra"] == {"id": 3, "negative": -2, "listed": [1, 2.5]}
    assert outputs[""] == OUTPUT
    no_doubles(result.stdout)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with maestro_serve("--http-port", "0") as running:
        yield running


async def test_through_a_server_every_json_prints_integers(
    workflow_file: Path, http: ScriptedHttp, server: ServerProcess
) -> None:
    """`execute --server` (output and --events jsonl), `executions get`, and the HTTP API's
    JSON: the same integers."""
    run = await asyncio.to_thread(
        maestro, "execute", workflow_file, "--server", server.address, "--execution-id", "n-1"
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == OUTPUT
    watched = await asyncio.to_thread(
        maestro, "executions", "watch", "n-1", "--server", server.address, "--events", "jsonl"
    )
    assert json.loads(watched.stdout.splitlines()[-1])["output"] == OUTPUT
    got = await asyncio.to_thread(maestro, "executions", "get", "n-1", "--server", server.address)
    assert got.returncode == 0, got.stderr
    execution = json.loads(got.stdout)
    assert execution["output"] == OUTPUT
    steps = {step["step_id"]: step for step in execution["steps"]}
    assert steps["create"]["output"] == {"id": 3, "ratio": 1.5}
    async with httpx.AsyncClient() as client:
        reply = await client.post(
            f"http://127.0.0.1:{http_port(server)}/maestro.v1.Orchestrator/GetExecution",
            json={"executionId": "n-1"},
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["execution"]["output"] == OUTPUT
    for text in (run.stdout, watched.stdout, got.stdout, reply.text):
        no_doubles(text)
    assert invoice_urls(http) == ["/invoices/3"]


def test_the_api_has_no_double_fields() -> None:
    """`maestro executions get` prints every float of a reply as an integer when it is whole,
    which is right only while every float comes from a Struct: no field is a double."""
    floating = (
        descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
        descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
    )
    fields: list[Any] = [
        field
        for message in pb.DESCRIPTOR.message_types_by_name.values()
        for field in _all_fields(message)
        if field.type in floating
    ]
    assert fields == []


def _all_fields(message: Any) -> Iterator[Any]:
    yield from message.fields
    for nested in message.nested_types:
        yield from _all_fields(nested)
