"""The files a workflow names: the client attaches exactly the files the server reads.

The SDK ships without the server, so it keeps its own copy of the `import` statement pattern;
this test keeps the two in step.
"""

from pathlib import Path

import maestro_client
from maestro_server.definition import load_workflow_file
from maestro_server.definition.files import proto_imports

PROTOS = {
    "protos/a/main.proto": (
        'syntax = "proto3";\n'
        'import "a/plain.proto";\n'
        '  import   public "a/public.proto" ;\n'
        'import weak "a/weak.proto";\n'
        'import "google/protobuf/empty.proto";\n'
        '// import "a/commented.proto";\n'
        "service S { rpc M(google.protobuf.Empty) returns (google.protobuf.Empty); }\n"
    ),
    "protos/a/plain.proto": 'syntax = "proto3";\nimport "a/nested.proto";\n',
    "protos/a/public.proto": 'syntax = "proto3";\n',
    "protos/a/weak.proto": 'syntax = "proto3";\n',
    "protos/a/nested.proto": 'syntax = "proto3";\n',
    "protos/a/commented.proto": 'syntax = "proto3";\n',
}


def test_proto_imports_reads_every_form_of_import() -> None:
    """Plain, public and weak imports are found, in order; commented ones are not."""
    assert proto_imports(PROTOS["protos/a/main.proto"]) == [
        "a/plain.proto",
        "a/public.proto",
        "a/weak.proto",
        "google/protobuf/empty.proto",
    ]


def test_client_attaches_the_files_the_server_reads(tmp_path: Path) -> None:
    """WorkflowSource.from_file sends what load_workflow_file reads, imports included."""
    for name, text in PROTOS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "w.yaml").write_text("""\
name: w
services:
  svc: {type: grpc, endpoint: "h:1", protos: [protos/a/main.proto], import_paths: [protos]}
steps:
  - {id: a, service: svc, method: M}
""")
    server = load_workflow_file(tmp_path / "w.yaml")
    client = maestro_client.WorkflowSource.from_file(tmp_path / "w.yaml")
    expected = [
        "protos/a/main.proto",
        "protos/a/nested.proto",
        "protos/a/plain.proto",
        "protos/a/public.proto",
        "protos/a/weak.proto",
    ]
    assert sorted(server.files) == expected
    assert sorted(client.files) == expected
