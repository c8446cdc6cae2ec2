"""A real `maestro serve --http-port 0` with the onboarding services, and headless Chromium.

One server, one fleet of services and one browser per module; each test gets a fresh page.
"""

import json
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from demo_services.fleet import Fleet, fleet
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.api.conftest import INPUT, ServerProcess, maestro_serve, onboarding_yaml

CHROMIUM = "/usr/bin/chromium"
ADMIN_TOKEN = "console-admin-token"
READ_TOKEN = "console-read-token"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
UPDATE_SCREENSHOTS = os.environ.get("MAESTRO_SCREENSHOTS") == "update"  # `make screenshots`
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)  # auto-waiting assertions, never sleeps


@dataclass
class Console:
    """The server's HTTP face, its gRPC port, and the services behind the workflows."""

    url: str
    server: ServerProcess
    services: Fleet

    def call(self, method: str, body: dict[str, Any], token: str = ADMIN_TOKEN) -> httpx.Response:
        """One unary RPC over Connect JSON."""
        return httpx.post(
            f"{self.url}/maestro.v1.Orchestrator/{method}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def start(self, yaml: str, execution_id: str) -> str:
        """Start an execution of a workflow text; returns its id."""
        reply = self.call(
            "StartWorkflow", {"workflowYaml": yaml, "input": INPUT, "executionId": execution_id}
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["executionId"])

    def watch_to_end(self, execution_id: str) -> list[dict[str, Any]]:
        """Every event of an execution, through WatchExecution (a Connect stream), to its end."""
        request = json.dumps({"executionId": execution_id}).encode()
        reply = httpx.post(
            f"{self.url}/maestro.v1.Orchestrator/WatchExecution",
            content=struct.pack(">BI", 0, len(request)) + request,
            headers={
                "Authorization": f"Bearer {ADMIN_TOKEN}",
                "Content-Type": "application/connect+json",
            },
            timeout=60,
        )
        frames = envelopes(reply.content)
        assert frames[-1] == (2, {}), frames[-1]
        return [body["event"] for _, body in frames[:-1]]

    def workflow(self) -> str:
        """The onboarding workflow at the fleet, its CRM compensation giving up after 2 tries."""
        yaml = onboarding_yaml(self.services.endpoints)
        return yaml.replace(
            "      method: DELETE /contacts/{{ .crm_contact.id }}",
            "      method: DELETE /contacts/{{ .crm_contact.id }}\n"
            "      retry: {max_attempts: 2, initial_backoff: 10ms}",
        )


def envelopes(data: bytes) -> list[tuple[int, Any]]:
    """The (flags, JSON body) of each envelope of a Connect stream."""
    frames = []
    while data:
        flags, length = struct.unpack(">BI", data[:5])
        frames.append((flags, json.loads(data[5 : 5 + length])))
        data = data[5 + length :]
    return frames


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`maestro serve` on SQLite with tokens (one admin, one read-only) and the HTTP face."""
    folder = tmp_path_factory.mktemp("console")
    tokens = folder / "tokens"
    tokens.write_text(f"{ADMIN_TOKEN}\n{READ_TOKEN} read\n")
    with (
        fleet() as services,
        maestro_serve(
            "--http-port",
            "0",
            "--auth-token-file",
            str(tokens),
            "--store",
            f"sqlite:///{folder / 'maestro.db'}",
        ) as server,
    ):
        serving = next(e for e in server.log if e["event"] == "serving")
        yield Console(f"http://127.0.0.1:{serving['http_port']}", server, services)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless (the project installs it; Playwright never downloads one)."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make install` (apt-get install chromium)")
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )
    yield launched
    launched.close()


def new_context(browser: Browser, token: str | None, **options: Any) -> BrowserContext:
    """A fresh browser profile (pinned locale, time zone, no motion), signed in with `token`."""
    context = browser.new_context(
        locale="en-GB",
        timezone_id="UTC",
        reduced_motion="reduce",
        viewport=options.pop("viewport", {"width": 1280, "height": 800}),
        **options,
    )
    context.set_default_timeout(TIMEOUT_MS)
    if token is not None:
        context.add_init_script(f"sessionStorage.setItem('maestro.token', {token!r})")
    return context


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page signed in with the admin token."""
    context = new_context(browser, ADMIN_TOKEN)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests' screenshots go: docs/console/ for `make screenshots` (the README shows
    them), a scratch folder otherwise, so a test run leaves the work tree as it was."""
    if UPDATE_SCREENSHOTS:
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path_factory.mktemp("screenshots")
