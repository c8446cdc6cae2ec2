"""A demo service's admin API over HTTP, for tests, benchmarks and chaos runs.

    GET /ledger  -> {"calls": {method: count}, "effects": [{"method", "key", "at"}],
                     "faults": {"method=CODE": count, "method=DELAY": count}}
    PUT /faults  <- {"seed": 7,
                     "errors": {method: {"code": "UNAVAILABLE", "rate": 0.2}},
                     "delays": {method: {"seconds": 0.5, "rate": 0.1}}}

`at` is the wall clock in seconds, comparable between services on one machine.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from demo_services.behaviour import Faults, Ledger


def serve_admin(faults: Faults, ledger: Ledger, port: int, host: str) -> ThreadingHTTPServer:
    """Serve the admin API in a background thread; `server_address[1]` is the port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/ledger":
                self._reply(200, {**ledger.summary(), "faults": faults.injected_counts()})
            else:
                self._reply(404, {"error": f"no route GET {self.path}"})

        def do_PUT(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if self.path != "/faults":
                self._reply(404, {"error": f"no route PUT {self.path}"})
                return
            try:
                faults.replace(json.loads(self.rfile.read(length)))
            except (ValueError, TypeError) as exc:
                self._reply(400, {"error": str(exc)})
                return
            self._reply(200, {})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server
