"""Importing the HTTP transport's libraries without what a run does not use.

- **aiohttp's CAs.** When `aiohttp.connector` is imported it makes two SSL contexts (verified
  and unverified) and each loads the system's CA bundle: about 40 ms of CPU on the development
  VM (OpenSSL 3 parses every certificate), in every `maestro execute` of a workflow with an HTTP
  service, although Maestro never uses them: the HTTP transport passes its own context with
  each https request. They are made with that load deferred: a context made meanwhile loads
  the CAs just before it first verifies anything (a handshake, or a question about its store),
  so anyone who does use aiohttp's defaults gets the same CAs as before. The class stays
  `ssl.SSLContext` (aiohttp checks contexts with isinstance); only its CA load waits.
- **httpx's command line.** `import httpx` tries to import its `httpx` command, and so click
  and pygments (10 ms), before it finds that rich, which the command also needs, is not
  installed. It is imported as when they are all missing: `httpx.main` is httpx's stand-in
  that says the command cannot run (as it is here anyway), and `httpx._main` is left
  importable by whoever wants it.
"""

from __future__ import annotations

import ssl
import sys
from typing import Any

_LOADS_FIRST = ("wrap_bio", "wrap_socket", "get_ca_certs", "cert_store_stats")
"""What reads a context's CA store: each loads the deferred CAs first."""


def import_http_libraries() -> None:
    """Import aiohttp (its client) and httpx, leaving out the parts above; once per process."""
    _import_aiohttp()
    _import_httpx()


def _import_aiohttp() -> None:
    if "aiohttp.connector" in sys.modules:
        return
    context_class: Any = ssl.SSLContext
    context_class.set_default_verify_paths = _defer_default_verify_paths
    try:
        import aiohttp.connector  # noqa: F401, PLC0415 - the import this function is for
    finally:
        del context_class.set_default_verify_paths  # the C method shows through again


def _defer_default_verify_paths(context: ssl.SSLContext) -> None:
    """Stand in for `set_default_verify_paths` while aiohttp is imported."""
    state: dict[str, Any] = vars(context)

    def loading_first(name: str) -> Any:
        method = getattr(ssl.SSLContext, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if any(name in state for name in _LOADS_FIRST):
                for hooked in _LOADS_FIRST:
                    state.pop(hooked, None)
                super(ssl.SSLContext, context).set_default_verify_paths()  # the C method
            return method(context, *args, **kwargs)

        return call

    for name in _LOADS_FIRST:
        state[name] = loading_first(name)


def _import_httpx() -> None:
    if "httpx" in sys.modules:
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment] # import fails: httpx's fallback
    try:
        import httpx  # noqa: F401, PLC0415 - the import this function is for
    finally:
        del sys.modules["httpx._main"]
