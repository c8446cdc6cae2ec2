"""The HTTP libraries imported without what a run does not use (transports/http_libraries.py).

aiohttp with its default contexts' CAs deferred still trusts the same CAs: checked in a fresh
interpreter (aiohttp is imported once per process), whose system CAs are a CA made for the test
(SSL_CERT_FILE), against a local HTTPS server with its certificate.
"""

import os
import ssl
import subprocess
import sys
from pathlib import Path

import trustme

ROOT = Path(__file__).resolve().parents[2]

_CHECK = """
import asyncio, ssl, sys
from maestro_server.transports.http_libraries import import_http_libraries

import_http_libraries()
import aiohttp, aiohttp.connector
from maestro_server.definition import load_workflow
from maestro_server.transports.base import Call, HttpTarget, Request
from maestro_server.transports.registry import Transports

assert "set_default_verify_paths" not in vars(ssl.SSLContext), "the stand-in is left behind"
assert type(aiohttp.connector._SSL_CONTEXT_VERIFIED) is ssl.SSLContext
url = sys.argv[1]

async def main() -> None:
    # aiohttp's own default context (ssl=True): its CAs are loaded at the handshake.
    async with aiohttp.ClientSession() as session, session.post(url + "/x") as reply:
        assert reply.status == 200, reply.status
    # Maestro's transport, no tls: httpx's default context, made at this first https request.
    service = load_workflow(
        f"name: t\\nservices: {{s: {{type: http, endpoint: '{url}'}}}}\\n"
        "steps: [{id: a, service: s, method: POST /x}]\\n"
    ).services["s"]
    async with Transports() as transports:
        call = Call(Request(service, HttpTarget("POST", "/x"), {}, {}, "e:a"), 1, 5.0)
        assert await transports.invoke(call) == {"ok": True}

asyncio.run(main())
stats = [aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats(),
         aiohttp.connector._SSL_CONTEXT_UNVERIFIED.cert_store_stats()]
assert stats == [ssl.create_default_context().cert_store_stats()] * 2, stats
print("ok")
"""


def test_default_contexts_load_the_system_cas_when_first_used(tmp_path: Path) -> None:
    """aiohttp's default context and Maestro's default one both trust the system's CAs (here:
    the test's CA), and each of aiohttp's two contexts ends up with the whole store."""
    from tests.transports.http_server import scripted_http

    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    with scripted_http(tls=context) as http:
        http.answer("POST /x", 200, {"ok": True})
        url = http.url.replace("127.0.0.1", "localhost")
        env = dict(os.environ, SSL_CERT_FILE=str(ca_file))
        env.pop("SSL_CERT_DIR", None)
        run_in_fresh_python(_CHECK, url, env=env)


_HTTPX = """
import sys
from maestro_server.transports.http_libraries import import_http_libraries

import_http_libraries()
import httpx
assert "httpx._main" not in sys.modules and "click" not in sys.modules
assert httpx.Request("GET", "http://h/x").url.path == "/x"
print("ok")
"""


def test_httpx_comes_without_its_command_line() -> None:
    """httpx is imported without its command line (click, pygments), and works."""
    run_in_fresh_python(_HTTPX)


def run_in_fresh_python(script: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run `script` in a new interpreter (nothing imported yet); it must print "ok"."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=dict(env or os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
