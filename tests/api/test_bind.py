"""Where `maestro serve` listens: loopback by default; elsewhere only with authentication.

The listening sockets are read from /proc (the process's own socket inodes matched against
the kernel's TCP tables), never found by connecting to some other address.
"""

import argparse
import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from maestro_server.cli.main import build_parser
from maestro_server.cli.serve import exposure_warning
from maestro_server.errors import InvalidInputError
from tests.api.conftest import maestro_serve
from tests.conftest import ROOT

_LISTEN = "0A"


def _address(hex_address: str) -> tuple[str, int]:
    """`0100007F:1F90` (little-endian 32-bit words) → ("127.0.0.1", 8080)."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    # gRPC binds an IPv6 socket to ::ffff:127.0.0.1: the same loopback address, mapped.
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address), int(port, 16)


def listening(pid: int) -> set[tuple[str, int]]:
    """The (address, port) of every TCP socket the process listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = fd.readlink().name if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == _LISTEN and fields[9] in inodes:
                found.add(_address(fields[1]))
    return found


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="reads Linux's /proc")
def test_serve_without_host_listens_on_loopback_only() -> None:
    """No --host: the only listening socket is 127.0.0.1 on the logged port."""
    with maestro_serve(host=None) as server:
        port = int(server.address.rsplit(":", 1)[1])
        sockets = listening(server.process.pid)
    assert sockets == {("127.0.0.1", port)}


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "10.1.2.3", "maestro.internal"])
def test_a_non_loopback_host_without_tokens_is_refused(host: str) -> None:
    """Exit 1 before binding anything, saying what to give instead."""
    result = subprocess.run(
        [sys.executable, "-m", "maestro_server", "serve", "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"--host {host} is not a loopback address" in result.stderr
    assert "--auth-token-file" in result.stderr and "--insecure" in result.stderr


def args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *flags])


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(("--host", "127.0.0.1"), id="loopback"),
        pytest.param(("--host", "[::1]"), id="IPv6 loopback"),
        pytest.param(("--host", "localhost"), id="localhost"),
        pytest.param(("--host", "0.0.0.0", "--auth-token-file", "tokens"), id="tokens"),
        pytest.param(("--host", "[::]", "--tls-client-ca", "ca.pem"), id="client certificates"),
    ],
)
def test_loopback_or_authenticated_needs_no_warning(flags: tuple[str, ...]) -> None:
    """These start quietly."""
    assert exposure_warning(args(*flags)) is None


def test_insecure_allows_an_open_api_with_one_warning_line() -> None:
    """--insecure is the explicit choice; the start says so in one line."""
    warning = exposure_warning(args("--host", "0.0.0.0", "--insecure"))
    assert warning is not None and "\n" not in warning
    assert warning.startswith("insecure: listening on 0.0.0.0 without authentication")


def test_refusal_is_an_invalid_input() -> None:
    """The refusal is the CLI's usage error (exit 1)."""
    with pytest.raises(InvalidInputError, match="not a loopback address"):
        exposure_warning(args("--host", "0.0.0.0"))
