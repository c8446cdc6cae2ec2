"""A real HTTP server on loopback whose answers a test scripts, recording every request."""

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    delay: float = 0.0
    hang_up: bool = False  # close the connection after reading the request, without answering


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    request_line: str = ""
    """The request line as it came over the wire, e.g. `DELETE /api/x%2Fy HTTP/1.1`."""


@dataclass
class ScriptedHttp:
    url: str = ""
    answers: dict[str, Answer] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def answer(
        self,
        route: str,
        status: int = 200,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        hang_up: bool = False,
    ) -> None:
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        self.answers[route] = Answer(
            status, data, headers or {"content-type": "application/json"}, delay, hang_up
        )


@contextmanager
def scripted_http(tls: ssl.SSLContext | None = None) -> Iterator[ScriptedHttp]:
    script = ScriptedHttp()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 64 * 1024

        def _respond(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path
            script.received.append(
                Received(
                    self.command,
                    path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                    self.requestline,
                )
            )
            answer = script.answers.get(
                f"{self.command} {path.split('?')[0]}", Answer(404, b'{"error": "no route"}')
            )
            if answer.delay:
                time.sleep(answer.delay)
            if answer.hang_up:
                self.close_connection = True
                return
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _respond

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    script.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
