"""Templated header and metadata values that would break out of their header are not sent.

Real servers on loopback; each case checks that the step failed before any attempt (not in
doubt, no STEP_STARTED) and that the server received nothing.
"""

from collections.abc import AsyncIterator, Iterator

import pytest

from maestro_server.model.execution import Event, EventType, ExecutionState
from tests.transports.http_server import ScriptedHttp, scripted_http
from tests.transports.servers import echo_server
from tests.transports.test_http_paths import run

HOSTILE = [
    pytest.param("ada\r\nX-Admin: true", "CR", id="CRLF and a forged header"),
    pytest.param("ada\nX-Admin: true", "LF", id="bare LF"),
    pytest.param("ada\rx", "CR", id="bare CR"),
    pytest.param("ada\x00admin", "NUL", id="NUL"),
]


@pytest.fixture
def http() -> Iterator[ScriptedHttp]:
    with scripted_http() as server:
        yield server


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    async with echo_server() as (address, _):
        yield address


def refused_before_sending(events: list[Event], header: str, char: str) -> None:
    assert not [e for e in events if e.type is EventType.STEP_STARTED]
    (failed,) = [e for e in events if e.type is EventType.STEP_FAILED]
    assert failed.error is not None and failed.error.code == "TEMPLATE_ERROR"
    message = failed.error.message
    assert f"step 'call', field 'headers.{header}'" in message, message
    assert f"holds a {char} character" in message and "nothing was sent" in message
    assert not failed.in_doubt


@pytest.mark.parametrize(("value", "char"), HOSTILE)
async def test_http_header_value_with_a_line_break_is_not_sent(
    http: ScriptedHttp, value: str, char: str
) -> None:
    """`X-User: "{{ .input.user }}"` with a CR, LF or NUL in the user: refused, named."""
    http.answer("POST /x", 200, {})
    yaml = f"""\
name: h
services:
  crm:
    type: http
    endpoint: "{http.url}"
    headers: {{X-User: "{{{{ .input.user }}}}"}}
steps:
  - {{id: call, service: crm, method: POST /x}}
"""
    state, events = await run(yaml, {"user": value})
    assert state is ExecutionState.FAILED
    refused_before_sending(events, "X-User", char)
    assert http.received == []


@pytest.mark.parametrize(("value", "char"), HOSTILE)
async def test_grpc_metadata_value_with_a_line_break_is_not_sent(
    echo: str, value: str, char: str
) -> None:
    """The same for gRPC metadata."""
    yaml = f"""\
name: g
services:
  echo:
    type: grpc
    endpoint: "{echo}"
    headers: {{x-user: "{{{{ .input.user }}}}"}}
steps:
  - {{id: call, service: echo, method: testing.v1.EchoService/Echo}}
"""
    state, events = await run(yaml, {"user": value})
    assert state is ExecutionState.FAILED
    refused_before_sending(events, "x-user", char)


async def test_ordinary_values_still_go(http: ScriptedHttp) -> None:
    """Tabs, quotes and non-ASCII letters are not refused."""
    http.answer("POST /x", 200, {})
    yaml = f"""\
name: h
services:
  crm: {{type: http, endpoint: "{http.url}", headers: {{X-User: "{{{{ .input.user }}}}"}}}}
steps:
  - {{id: call, service: crm, method: POST /x}}
"""
    state, _ = await run(yaml, {"user": 'ada "the first"\tlovelace'})
    assert state is ExecutionState.COMPLETED
    assert http.received[0].headers["x-user"] == 'ada "the first"\tlovelace'
