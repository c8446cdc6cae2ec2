"""The CRM: contacts over HTTP/JSON (standard library server, one thread per request)."""

from __future__ import annotations

import itertools
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from demo_services.behaviour import RESET, Faults, Ledger


class Crm:
    """Contacts in memory, served by `serve()`."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.ledger = Ledger()
        self.contacts: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def handle(
        self, verb: str, path: str, key: str | None, attempt: str | None, body: Any
    ) -> tuple[int, Any]:
        """Answer one request: (status, JSON body)."""
        route = f"{verb} /contacts" if path.startswith("/contacts") else f"{verb} {path}"
        self.ledger.record(route, key, attempt, {"path": path, "body": body})
        delay = self.faults.delay(route)
        if delay:
            time.sleep(delay)
        code = self.faults.take(route)
        if code == RESET:
            raise ConnectionResetError(f"injected fault: {code}")
        if code is not None:
            status = (
                int(code.removeprefix("HTTP_")) if code.removeprefix("HTTP_").isdigit() else 500
            )
            return status, {"error": f"injected fault: {code}"}
        if verb == "GET" and path == "/healthz":
            return 200, {"status": "SERVING"}
        if verb == "GET" and path == "/contacts":
            return 200, {"contacts": list(self.contacts.values())}
        if path.startswith("/contacts/") and verb in ("GET", "DELETE"):
            return self._one(verb, path.removeprefix("/contacts/"), key)
        if verb == "POST" and path == "/contacts":
            return self._create(key, body)
        return 404, {"error": f"no route {verb} {path}"}

    def _create(self, key: str | None, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not body.get("email"):
            return 422, {"error": "a contact needs an email"}
        try:
            return 201, self.ledger.replay(key, body)
        except KeyError:
            pass
        except ValueError as exc:
            return 422, {"error": str(exc)}
        with self._lock:
            contact = {"id": f"c_{next(self._ids):04d}", "status": "ACTIVE", **body}
            self.contacts[contact["id"]] = contact
        self.ledger.acted("POST /contacts", key)
        self.ledger.keep(key, body, contact)
        return 201, contact

    def _one(self, verb: str, contact_id: str, key: str | None) -> tuple[int, Any]:
        contact = self.contacts.get(contact_id)
        if verb == "GET":
            return (200, contact) if contact else (404, {"error": "no such contact"})
        if contact is None:  # nothing to undo is not an error for a compensation
            reply = {"id": contact_id, "deleted": False}
        else:
            contact["status"] = "DELETED"
            reply = {"id": contact_id, "deleted": True}
        self.ledger.acted("DELETE /contacts", key)
        return 200, reply

    def serve(self, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        """Start serving in a background thread; `server_address[1]` is the port."""
        crm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as one segment: with Nagle's algorithm and delayed ACKs,
            # two small writes cost a 40 ms stall per request.
            disable_nagle_algorithm = True
            wbufsize = 64 * 1024

            def _respond(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                try:
                    status, reply = crm.handle(
                        self.command,
                        self.path.split("?", 1)[0],
                        self.headers.get("idempotency-key"),
                        self.headers.get("maestro-attempt"),
                        body,
                    )
                except ConnectionResetError:  # an injected reset: RST instead of an answer
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.close_connection = True
                    return
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = _respond

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # the default backlog of 5 resets bursts of connections

            def handle_error(self, request: Any, client_address: Any) -> None:
                if isinstance(sys.exc_info()[1], ConnectionError):
                    return  # a client that went away (killed, say) is not the server's error
                super().handle_error(request, client_address)

        server = Server((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return server
