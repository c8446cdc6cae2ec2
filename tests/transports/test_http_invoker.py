"""The HTTP invoker against a real HTTP server on loopback."""

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest

from maestro_server.definition import load_workflow
from maestro_server.model.workflow import Service
from maestro_server.transports.base import Call, CallError, HttpTarget, Request
from maestro_server.transports.http import HttpInvoker
from tests.transports.http_server import ScriptedHttp, scripted_http


@pytest.fixture
def http() -> Iterator[ScriptedHttp]:
    with scripted_http() as server:
        yield server


@pytest.fixture
async def invoker() -> AsyncIterator[HttpInvoker]:
    invoker = HttpInvoker()
    yield invoker
    await invoker.close()


def service(url: str) -> Service:
    workflow = load_workflow(f"""\
name: t
services:
  crm: {{type: http, endpoint: "{url}"}}
steps:
  - {{id: a, service: crm, method: "POST /x"}}
""")
    return workflow.services["crm"]


def call(
    url: str,
    target: str,
    payload: Any = None,
    *,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> Call:
    verb, path = target.split(" ", 1)
    request = Request(service(url), HttpTarget(verb, path), payload, headers or {}, "ex-1:a")
    return Call(request, 2, timeout)


async def test_post_sends_json_and_the_idempotency_key(
    http: ScriptedHttp, invoker: HttpInvoker
) -> None:
    """The input is the JSON body; the key and the attempt travel as headers."""
    http.answer("POST /contacts", 201, {"id": "c1"})
    reply = await invoker.invoke(
        call(http.url, "POST /contacts", {"email": "a@b.c"}, headers={"X-Tenant": "t1"})
    )
    assert reply == {"id": "c1"}
    (received,) = http.received
    assert received.body == {"email": "a@b.c"}
    assert received.headers["idempotency-key"] == "ex-1:a"
    assert received.headers["maestro-attempt"] == "2"
    assert received.headers["x-tenant"] == "t1"


async def test_get_sends_the_input_as_query_parameters(
    http: ScriptedHttp, invoker: HttpInvoker
) -> None:
    """For GET and DELETE the input becomes the query: lists repeat, objects go as JSON."""
    http.answer("GET /search", 200, {"hits": 0})
    await invoker.invoke(
        call(
            http.url,
            "GET /search",
            {"q": "a+b &c=d%", "tag": ["a", "b"], "f": {"x": 1}, "on": True, "no": None},
        )
    )
    path, query = http.received[0].path.split("?", 1)
    assert path == "/search"
    assert parse_qsl(query, strict_parsing=True) == [
        ("q", "a+b &c=d%"),
        ("tag", "a"),
        ("tag", "b"),
        ("f", '{"x": 1}'),
        ("on", "true"),
    ]


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        pytest.param(b"plain text", "text/plain", {"body": "plain text", "status": 200}, id="text"),
        pytest.param(b"[1, 2]", "application/json", {"body": [1, 2], "status": 200}, id="array"),
        pytest.param(b"", "text/plain", {"body": "", "status": 200}, id="empty"),
    ],
)
async def test_responses_that_are_not_objects_are_wrapped(
    http: ScriptedHttp, invoker: HttpInvoker, raw: bytes, content_type: str, expected: Any
) -> None:
    """Non-JSON bodies become {"body": text, "status": n}."""
    http.answer("GET /x", 200, raw=raw, headers={"content-type": content_type})
    assert await invoker.invoke(call(http.url, "GET /x")) == expected


@pytest.mark.parametrize(
    ("status", "headers", "breaker", "retry_after"),
    [
        pytest.param(404, {}, False, None, id="404 is a business error"),
        pytest.param(422, {}, False, None, id="422 is a business error"),
        pytest.param(503, {"retry-after": "2"}, True, 2.0, id="503 with Retry-After seconds"),
        pytest.param(
            429,
            {
                "retry-after": "Wed, 25 Nov 2026 10:00:05 GMT",
                "date": "Wed, 25 Nov 2026 10:00:00 GMT",
            },
            True,
            5.0,
            id="429 with a date",
        ),
        pytest.param(501, {}, False, None, id="501 means not implemented, not down"),
        pytest.param(
            302, {"location": "http://169.254.169.254/"}, False, None, id="redirect not followed"
        ),
    ],
)
async def test_error_statuses(
    http: ScriptedHttp,
    invoker: HttpInvoker,
    status: int,
    headers: dict[str, str],
    breaker: bool,
    retry_after: float | None,
) -> None:
    """Each status maps to HTTP_<status>; only overload and outage count for the breaker."""
    http.answer(
        "POST /x",
        status,
        {"error": "nope"},
        headers={"content-type": "application/json", **headers},
    )
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(http.url, "POST /x", {}))
    assert caught.value.code == f"HTTP_{status}"
    assert caught.value.counts_for_breaker is breaker
    assert caught.value.retry_after == retry_after
    assert '{"error": "nope"}' in caught.value.message
    assert len(http.received) == 1


async def test_timeout_is_in_doubt(http: ScriptedHttp, invoker: HttpInvoker) -> None:
    """No answer in time: DEADLINE_EXCEEDED, and the request may have had its effect."""
    http.answer("POST /slow", 200, {}, delay=1.0)
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(http.url, "POST /slow", {}, timeout=0.1))
    assert caught.value.code == "DEADLINE_EXCEEDED"
    assert caught.value.maybe_executed and caught.value.counts_for_breaker


async def test_connection_refused_is_unavailable_and_not_sent(invoker: HttpInvoker) -> None:
    """Nobody listening: UNAVAILABLE, and known not to have acted."""
    with scripted_http() as gone:
        url = gone.url
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(url, "POST /x", {}))
    assert caught.value.code == "UNAVAILABLE"
    assert not caught.value.maybe_executed and caught.value.counts_for_breaker


async def test_connection_lost_after_sending_is_in_doubt(
    http: ScriptedHttp, invoker: HttpInvoker
) -> None:
    """The server hangs up after reading the request: UNAVAILABLE, and it may have acted."""
    http.answer("POST /flaky", hang_up=True)
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(http.url, "POST /flaky", {}))
    assert caught.value.code == "UNAVAILABLE"
    assert "connection to" in caught.value.message and "lost" in caught.value.message
    assert caught.value.maybe_executed and caught.value.counts_for_breaker
    assert len(http.received) == 1


async def test_a_reply_that_is_not_http_is_in_doubt(invoker: HttpInvoker) -> None:
    """Bytes that are not an HTTP response: UNAVAILABLE (protocol error), maybe executed."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def answer_garbage() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        with pytest.raises(CallError) as caught:
            await invoker.invoke(call(f"http://127.0.0.1:{port}", "POST /x", {}))
        thread.join(timeout=5)
    assert caught.value.code == "UNAVAILABLE"
    assert caught.value.maybe_executed


async def test_oversized_response_is_refused_without_reading_it_all(
    http: ScriptedHttp, invoker: HttpInvoker
) -> None:
    """A body over 4 MiB is a BAD_RESPONSE (not kept in memory whole)."""
    http.answer(
        "GET /big", 200, raw=b"x" * (5 * 1024 * 1024), headers={"content-type": "text/plain"}
    )
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(http.url, "GET /big"))
    assert caught.value.code == "BAD_RESPONSE"
    assert "larger than 4194304 bytes" in caught.value.message
