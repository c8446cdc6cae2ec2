"""Values in HTTP method paths are data: what a real server sees on its request line.

Each case runs a workflow through the engine and the HTTP transport against a real server on
loopback that records the raw request line, so the URL is checked as it crossed the wire.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Runner
from maestro_server.model.execution import Event, EventType, ExecutionState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import SystemClock
from maestro_server.transports.registry import Transports
from tests.engine.fakes import ListSink
from tests.transports.http_server import ScriptedHttp, scripted_http


@pytest.fixture
def http() -> Iterator[ScriptedHttp]:
    with scripted_http() as server:
        yield server


def one_call(url: str, method: str, step_input: str = "{}") -> str:
    return f"""\
name: paths
services:
  crm: {{type: http, endpoint: "{url}/api", retry: {{max_attempts: 1}}}}
steps:
  - id: call
    service: crm
    method: {json.dumps(method)}
    input: {step_input}
"""


async def run(yaml: str, data: dict[str, Any]) -> tuple[ExecutionState, list[Event]]:
    sink = ListSink()
    async with Transports() as transports:
        runner = Runner(
            load_workflow(yaml),
            "ex-1",
            data,
            Dependencies(transports, sink, BreakerRegistry(SystemClock())),
        )
        result = await runner.run()
    return result.state, sink.events


def lines(http: ScriptedHttp) -> list[str]:
    return [received.request_line for received in http.received]


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        pytest.param("../users/1", "/api/contacts/..%2Fusers%2F1", id="dot-dot and slash"),
        pytest.param("%2e%2e/x", "/api/contacts/%252e%252e%2Fx", id="encoded dots"),
        pytest.param("a b/c", "/api/contacts/a%20b%2Fc", id="space and slash"),
        pytest.param("1?admin=true", "/api/contacts/1%3Fadmin%3Dtrue", id="question mark"),
        pytest.param("a/b", "/api/contacts/a%2Fb", id="slash"),
        pytest.param("..x", "/api/contacts/..x", id="dots inside a segment"),
        pytest.param("%2F", "/api/contacts/%252F", id="encoded slash"),
        pytest.param("#top", "/api/contacts/%23top", id="hash"),
        pytest.param("1;admin=1", "/api/contacts/1%3Badmin%3D1", id="matrix parameter"),
        pytest.param("Zoë €", "/api/contacts/Zo%C3%AB%20%E2%82%AC", id="unicode"),
        pytest.param(42, "/api/contacts/42", id="number"),
    ],
)
async def test_a_value_is_one_segment(http: ScriptedHttp, value: Any, sent: str) -> None:
    """`DELETE /contacts/{{ .input.id }}`: the value is percent-encoded into its segment,
    whatever it holds; the server routes it to the contact, never elsewhere."""
    http.answer(f"DELETE {sent}", 200, {"deleted": True})
    yaml = one_call(http.url, "DELETE /contacts/{{ .input.id }}")
    state, _ = await run(yaml, {"id": value})
    assert lines(http) == [f"DELETE {sent} HTTP/1.1"]
    assert state is ExecutionState.COMPLETED


@pytest.mark.parametrize("value", ["..", ".", ""], ids=["dot-dot", "dot", "empty"])
async def test_a_value_that_would_move_the_path_is_refused(http: ScriptedHttp, value: str) -> None:
    """A value that would make the segment `..`, `.` or empty is refused before sending:
    the step fails with its field named, not in doubt, and nothing reaches the server."""
    yaml = one_call(http.url, "DELETE /contacts/{{ .input.id }}")
    state, events = await run(yaml, {"id": value})
    assert state is ExecutionState.FAILED
    (failed,) = [e for e in events if e.type is EventType.STEP_FAILED]
    assert failed.error is not None and failed.error.code == "TEMPLATE_ERROR"
    assert "step 'call', field 'method'" in failed.error.message
    assert not failed.in_doubt
    assert http.received == []


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        pytest.param("docs/a b.txt", "/api/files/docs/a%20b.txt", id="two segments"),
        pytest.param("x?y#z/%41", "/api/files/x%3Fy%23z/%2541", id="syntax stays data"),
        pytest.param("ünï/cødé", "/api/files/%C3%BCn%C3%AF/c%C3%B8d%C3%A9", id="unicode"),
    ],
)
async def test_the_path_filter_spans_segments(http: ScriptedHttp, value: str, sent: str) -> None:
    """`{{ .input.file | path }}` keeps the value's slashes; every part is still encoded."""
    http.answer(f"PUT {sent}", 200, {})
    yaml = one_call(http.url, "PUT /files/{{ .input.file | path }}")
    state, _ = await run(yaml, {"file": value})
    assert lines(http) == [f"PUT {sent} HTTP/1.1"]
    assert state is ExecutionState.COMPLETED


@pytest.mark.parametrize("value", ["../etc/passwd", "a/./b", "a//b", "/abs"])
async def test_the_path_filter_refuses_dot_segments(http: ScriptedHttp, value: str) -> None:
    """Even a spanning value may not hold `..`, `.` or empty segments."""
    state, events = await run(
        one_call(http.url, "POST /files/{{ .input.file | path }}"), {"file": value}
    )
    assert state is ExecutionState.FAILED
    (failed,) = [e for e in events if e.type is EventType.STEP_FAILED]
    assert failed.error is not None and "path filter" in failed.error.message
    assert http.received == []


async def test_a_query_written_in_the_path_is_kept_and_its_values_encoded(
    http: ScriptedHttp,
) -> None:
    """`?` in the method's path starts the query: it is sent, and a value after it is one
    query component (`&`, `=` and `#` cannot add parameters)."""
    http.answer("POST /api/items", 201, {})
    yaml = one_call(http.url, "POST /items?tag={{ .input.tag }}&mode=fast")
    await run(yaml, {"tag": "a&admin=1#x y"})
    assert lines(http) == ["POST /api/items?tag=a%26admin%3D1%23x%20y&mode=fast HTTP/1.1"]


async def test_get_input_follows_the_query_written_in_the_path(http: ScriptedHttp) -> None:
    """For GET, the input's query parameters come after the ones the path holds."""
    http.answer("GET /api/search", 200, {})
    await run(one_call(http.url, "GET /search?fixed=1", "{q: '{{ .input.q }}'}"), {"q": "a b&c"})
    assert lines(http) == ["GET /api/search?fixed=1&q=a+b%26c HTTP/1.1"]


async def test_the_compensation_path_is_expanded_the_same_way(http: ScriptedHttp) -> None:
    """The id a compensation uses comes from a service's response: a hostile one still
    deletes only below /contacts/."""
    http.answer("POST /api/contacts", 201, {"id": "../admin/users"})
    http.answer("DELETE /api/contacts/..%2Fadmin%2Fusers", 204, raw=b"")
    yaml = f"""\
name: compensated
services:
  crm: {{type: http, endpoint: "{http.url}/api", retry: {{max_attempts: 1}}}}
steps:
  - id: add
    service: crm
    method: POST /contacts
    output: contact
    compensate:
      method: DELETE /contacts/{{{{ .contact.id }}}}
  - id: fail
    service: crm
    method: POST /nowhere
"""
    state, _ = await run(yaml, {})
    assert state is ExecutionState.COMPENSATED
    assert lines(http) == [
        "POST /api/contacts HTTP/1.1",
        "POST /api/nowhere HTTP/1.1",
        "DELETE /api/contacts/..%2Fadmin%2Fusers HTTP/1.1",
    ]


async def test_errors_show_the_url_as_sent(http: ScriptedHttp) -> None:
    """The event's error names the encoded path, the one the server saw."""
    yaml = one_call(http.url, "DELETE /contacts/{{ .input.id }}")
    _, events = await run(yaml, {"id": "a/b"})
    (failed,) = [e for e in events if e.type is EventType.STEP_FAILED]
    assert failed.error is not None and failed.error.code == "HTTP_404"
    assert f"DELETE {http.url}/api/contacts/a%2Fb answered 404" in failed.error.message
