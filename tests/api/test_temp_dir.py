"""`maestro serve` where the default temporary directories cannot be written, as in a container
with `readOnlyRootFilesystem: true`: with TMPDIR pointing at a writable directory (the
manifests' emptyDir), a workflow whose schema is `protos:` compiles and runs; without it, the
step fails saying what to set, and nothing was sent.

The server runs in a mount namespace (`unshare`) where /tmp and /var/tmp, and the working
directory (tempfile's last resort), are read-only.
"""

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import maestro_serve
from tests.conftest import ROOT, maestro
from tests.transports.servers import PROTOS, echo_server

SANDBOX = """\
set -e
writable=$1; shift
mount --bind "$writable" "$writable"
for dir in /tmp /var/tmp; do mount --rbind "$dir" "$dir"; mount -o remount,bind,ro "$dir"; done
cd /tmp
exec "$@"
"""
ENV = {"PYTHONPATH": str(ROOT)}  # the server starts in /tmp, not in the repository


def read_only_temp(writable: Path) -> list[str]:
    """The command prefix: every default temporary directory read-only, `writable` not."""
    return ["unshare", "--map-root-user", "--mount", "sh", "-c", SANDBOX, "sandbox", str(writable)]


@pytest.fixture
def writable(tmp_path: Path) -> Path:
    """A writable directory (the emptyDir), once the sandbox is known to work here."""
    folder = tmp_path / "writable"
    folder.mkdir()
    probe = subprocess.run(
        [*read_only_temp(folder), "sh", "-c", "! touch /tmp/probe 2>/dev/null"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here (unshare): {probe.stderr.decode().strip()}")
    return folder


@pytest.fixture
async def workflow(tmp_path: Path) -> AsyncIterator[Path]:
    """A workflow whose service has no reflection: its schema is compiled from `protos:`."""
    schema = tmp_path / "schema" / "testing" / "v1"
    schema.mkdir(parents=True)
    (schema / "echo.proto").write_bytes((PROTOS / "testing/v1/echo.proto").read_bytes())
    async with echo_server(reflection_versions=()) as (address, _):
        path = tmp_path / "compiled.yaml"
        path.write_text(f"""\
name: compiled
services:
  echo:
    type: grpc
    endpoint: "{address}"
    protos: [schema/testing/v1/echo.proto]
    import_paths: [schema]
steps:
  - {{id: say, service: echo, method: testing.v1.EchoService/Echo, input: {{text: hi}}}}
output: {{text: "{{{{ .steps.say.output.text }}}}"}}
""")
        yield path


async def test_tmpdir_elsewhere_compiles_protos(workflow: Path, writable: Path) -> None:
    """TMPDIR names the writable directory: the run completes, and leaves nothing there."""
    env = {**ENV, "TMPDIR": str(writable)}
    with maestro_serve(env=env, wrapper=read_only_temp(writable)) as server:
        result = await asyncio.to_thread(maestro, "execute", workflow, "--server", server.address)
        assert server.process.poll() is None
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{\n  "text": "hi"\n}\n'
    assert os.listdir(writable) == []


async def test_without_a_writable_temp_dir_the_start_says_so(
    workflow: Path, writable: Path
) -> None:
    """No TMPDIR: the server cannot compile the workflow's protos, which it does before running
    anything, so the start is refused (exit 1) naming TMPDIR at the `protos` entry; not
    INTERNAL, and nothing was sent."""
    with maestro_serve(env={**ENV, "TMPDIR": ""}, wrapper=read_only_temp(writable)) as server:
        result = await asyncio.to_thread(maestro, "execute", workflow, "--server", server.address)
    assert result.returncode == 1, result.stderr
    assert "(services.echo.protos): error: service 'echo': no temporary directory to compile" in (
        result.stderr
    )
    assert "set TMPDIR to a writable directory" in result.stderr
