"""Workflows that do not fit their services' schemas, refused by `maestro validate` and by
ValidateWorkflow with the same located diagnostics; fixed, the same workflows are clean.

Each file in tests/definition/schema_invalid/ starts with `# expect: LINE:COLUMN: MESSAGE`
lines (every diagnostic, in order) and `# fix: OLD => NEW` lines (the replacements that make it
valid). Its services read their schema from `protos:` files beside it, sent with the request.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import maestro_client
from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as rpc
from tests.api.conftest import maestro_serve
from tests.conftest import ROOT, maestro

CATALOG = ROOT / "tests" / "definition" / "schema_invalid"
CASES = sorted(CATALOG.glob("*.yaml"))


def _lines(path: Path, prefix: str) -> list[str]:
    return [
        line[len(prefix) :] for line in path.read_text().splitlines() if line.startswith(prefix)
    ]


def _fixed(text: str, path: Path) -> str:
    """The workflow with its fixes applied (below the header comments that name them)."""
    lines = text.splitlines(keepends=True)
    header = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    body = "".join(lines[header:])
    for fix in _lines(path, "# fix: "):
        old, new = fix.split(" => ")
        assert old in body, f"{path.name}: '{old}' is not in the workflow"
        body = body.replace(old, new, 1)
    return "".join(lines[:header]) + body


@pytest.fixture(scope="module")
def stub() -> Iterator[rpc.OrchestratorStub]:
    with maestro_serve() as server, grpc.insecure_channel(server.address) as channel:
        yield rpc.OrchestratorStub(channel)


def test_the_catalog_covers_each_kind_of_schema_problem() -> None:
    """Unknown fields (nested too), wrong literal types, an int into a string, unknown response
    fields, a missing method, a streaming one and a .proto that does not compile."""
    assert {case.stem for case in CASES} >= {
        "unknown-field",
        "unknown-nested-field",
        "wrong-literal-type",
        "int-into-string",
        "compensation-reads-unknown-response-field",
        "method-missing",
        "proto-does-not-compile",
    }
    for case in CASES:
        assert _lines(case, "# expect: "), f"{case.name} expects no diagnostic"
        assert _lines(case, "# fix: "), f"{case.name} has no fix"


def test_validate_reports_every_case_at_its_line_and_column() -> None:
    """`maestro validate` on the whole catalog: exit 1 and exactly the expected diagnostics."""
    result = maestro("validate", *CASES)
    assert result.returncode == 1
    assert result.stdout == ""
    for case in CASES:
        expected = [
            f"{case}:{e.split(': ', 1)[0]}: error: {e.split(': ', 1)[1]}"
            for e in _lines(case, "# expect: ")
        ]
        got = [line for line in result.stderr.splitlines() if line.startswith(f"{case}:")]
        count = len(expected)
        assert got == [*expected, f"{case}: {count} error{'s' if count != 1 else ''}"]


def test_the_fixed_catalog_validates_clean(tmp_path: Path) -> None:
    """Each workflow with its fixes applied is valid, against the same schemas."""
    shutil.copytree(CATALOG, tmp_path, dirs_exist_ok=True)
    fixed = []
    for case in CASES:
        copy = tmp_path / case.name
        copy.write_text(_fixed(case.read_text(), case))
        fixed.append(copy)
    result = maestro("validate", *fixed)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (shop: 1 services, 2 steps, 2 compensations)") == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_validate_workflow_gives_the_same_diagnostics(
    stub: rpc.OrchestratorStub, case: Path, tmp_path: Path
) -> None:
    """ValidateWorkflow, with the schema files in the request: the same line:column and
    message for each problem; the fixed workflow is valid."""
    source = maestro_client.WorkflowSource.from_file(case)
    request = pb.ValidateWorkflowRequest(
        workflow_yaml=source.yaml, workflow_path=case.name, files=source.files
    )
    reply = stub.ValidateWorkflow(request, timeout=30)
    assert not reply.valid
    got = [f"{d.line}:{d.column}: {d.message}" for d in reply.diagnostics]
    assert got == _lines(case, "# expect: ")
    assert {d.file for d in reply.diagnostics} == {case.name}
    shutil.copytree(CATALOG, tmp_path, dirs_exist_ok=True)
    (tmp_path / case.name).write_text(_fixed(source.yaml, case))
    source = maestro_client.WorkflowSource.from_file(tmp_path / case.name)
    request = pb.ValidateWorkflowRequest(
        workflow_yaml=source.yaml, workflow_path=case.name, files=source.files
    )
    fixed = stub.ValidateWorkflow(request, timeout=30)
    assert (fixed.valid, list(fixed.diagnostics)) == (True, [])
