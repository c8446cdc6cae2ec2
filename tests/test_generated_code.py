"""The committed generated protobuf code matches proto/ (regenerate with `make proto`)."""

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    """Regenerating into a scratch folder gives exactly the committed files."""
    subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--out", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    for package in ("maestro_server/_proto", "maestro_client/_proto"):
        fresh, committed = _files(tmp_path / package), _files(ROOT / package)
        assert sorted(fresh) == sorted(committed), f"{package}: files differ; run `make proto`"
        stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], False)]
        assert not stale, f"{package}: stale generated files {stale}; run `make proto`"


def test_generated_server_code_imports_and_names_the_service() -> None:
    """The service is maestro.v1.Orchestrator, with every RPC of the contract."""
    from maestro_server._proto.maestro.v1 import orchestrator_pb2

    service = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"]
    assert service.full_name == "maestro.v1.Orchestrator"
    assert sorted(m.name for m in service.methods) == sorted(
        [
            "ExecuteWorkflow",
            "StartWorkflow",
            "SignalExecution",
            "WatchExecution",
            "GetExecution",
            "ListExecutions",
            "CancelExecution",
            "ResumeExecution",
            "ValidateWorkflow",
            "RegisterWorkflow",
            "GetWorkflow",
            "ListWorkflows",
        ]
    )
    streaming = {m.name for m in service.methods if m.server_streaming}
    assert streaming == {"ExecuteWorkflow", "WatchExecution"}


def test_client_messages_round_trip_with_server_messages() -> None:
    """betterproto2 messages of the SDK and protobuf messages of the server share one wire format."""
    from google.protobuf import json_format

    from maestro_client._proto.maestro.v1 import ExecuteWorkflowRequest
    from maestro_server._proto.maestro.v1 import orchestrator_pb2

    server_side = json_format.ParseDict(
        {
            "workflow_yaml": "name: w",
            "input": {"email": "a@b.c", "n": 2},
            "execution_id": "e1",
            "files": {"a.binpb": "AAE="},
        },
        orchestrator_pb2.ExecuteWorkflowRequest(),
    )
    client_side = ExecuteWorkflowRequest.parse(server_side.SerializeToString())
    assert client_side.workflow_yaml == "name: w"
    assert client_side.execution_id == "e1"
    assert client_side.files == {"a.binpb": b"\x00\x01"}
    again = orchestrator_pb2.ExecuteWorkflowRequest.FromString(bytes(client_side))
    assert again == server_side
