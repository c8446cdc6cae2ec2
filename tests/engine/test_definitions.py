"""The workflows resumed executions run: compiled once per content, pointed where they started."""

from maestro_server.engine.definitions import Definitions
from maestro_server.store.base import ExecutionSource

YAML = """\
name: w
services:
  svc: {type: grpc, endpoint: "127.0.0.1:1"}
steps:
  - {id: a, service: svc, method: Do}
"""


def test_one_content_is_compiled_once_and_shared() -> None:
    """Thousands of executions of one definition resume with one compiled workflow."""
    definitions = Definitions()
    first = definitions.workflow(ExecutionSource(YAML, "w.yaml", {}))
    again = definitions.workflow(ExecutionSource(YAML, "w.yaml", {}))
    assert again is first
    assert first.services["svc"].endpoint == "127.0.0.1:1"


def test_the_endpoints_an_execution_started_with_are_part_of_the_content() -> None:
    """A server that pointed a service elsewhere resumes that execution pointed there too,
    and another execution of the same YAML where it started."""
    definitions = Definitions()
    moved = definitions.workflow(ExecutionSource(YAML, "w.yaml", {}, {"svc": "127.0.0.1:2"}))
    plain = definitions.workflow(ExecutionSource(YAML, "w.yaml", {}))
    assert moved.services["svc"].endpoint == "127.0.0.1:2"
    assert plain.services["svc"].endpoint == "127.0.0.1:1"
    other_files = definitions.workflow(ExecutionSource(YAML, "w.yaml", {"x.txt": b"1"}))
    assert other_files is not plain
