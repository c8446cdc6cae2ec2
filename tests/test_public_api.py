"""The client SDK's public surface is pinned: adding or removing a name is a decision."""

from pathlib import Path

import maestro_client


def test_client_exports() -> None:
    """`maestro_client.__all__` lists exactly what users may import."""
    assert sorted(maestro_client.__all__) == [
        "AbortedError",
        "AlreadyExistsError",
        "CompensationFailedError",
        "Diagnostic",
        "Error",
        "ErrorReason",
        "EventType",
        "Execution",
        "ExecutionCancelledError",
        "ExecutionCompensatedError",
        "ExecutionFailedError",
        "ExecutionFailureError",
        "ExecutionHandle",
        "ExecutionState",
        "FailedPreconditionError",
        "InvalidArgumentError",
        "MaestroClient",
        "MaestroError",
        "NotFoundError",
        "PermissionDeniedError",
        "Registered",
        "ResourceExhaustedError",
        "Signalled",
        "StepExecution",
        "StepState",
        "SyncExecutionHandle",
        "SyncMaestroClient",
        "TERMINAL_EVENT_TYPES",
        "UnauthenticatedError",
        "UnavailableError",
        "Validation",
        "WorkflowDefinition",
        "WorkflowEvent",
        "WorkflowRef",
        "WorkflowSource",
        "__version__",
        "output",
        "plain",
    ]
    for name in maestro_client.__all__:
        assert hasattr(maestro_client, name), name


def test_workflow_source_attaches_the_files_its_services_name(tmp_path: Path) -> None:
    """A workflow file travels with its descriptor sets and .proto files (imports included)."""
    (tmp_path / "protos" / "a").mkdir(parents=True)
    (tmp_path / "protos" / "a" / "a.proto").write_text('syntax = "proto3";\nimport "a/b.proto";\n')
    (tmp_path / "protos" / "a" / "b.proto").write_text('syntax = "proto3";\n')
    (tmp_path / "set.binpb").write_bytes(b"\x01")
    (tmp_path / "w.yaml").write_text("""\
name: w
services:
  one: {type: grpc, endpoint: "h:1", descriptor_set: set.binpb}
  two: {type: grpc, endpoint: "h:2", protos: [protos/a/a.proto], import_paths: [protos]}
steps: []
""")
    source = maestro_client.WorkflowSource.from_file(tmp_path / "w.yaml")
    assert sorted(source.files) == ["protos/a/a.proto", "protos/a/b.proto", "set.binpb"]
