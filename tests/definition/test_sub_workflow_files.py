"""Sub-workflow files: read with their parent, kept among its files, checked for recursion."""

from pathlib import Path

import pytest

import maestro_client
from maestro_server.api.graph import workflow_graph
from maestro_server.cli.graph import to_mermaid
from maestro_server.definition import load_workflow, load_workflow_file
from maestro_server.errors import InvalidWorkflowError

SERVICES = 'services:\n  shop: {type: http, endpoint: "http://shop:8080"}\n'


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_nested_files_travel_with_the_parent_and_rebuild_without_the_disk(
    tmp_path: Path,
) -> None:
    """A child in a subfolder names its own child relative to itself; the parent's files hold
    both under their paths from the parent, and loading the parent's source with those files
    alone gives the same workflow (as a resume does)."""
    write(
        tmp_path,
        "order.yaml",
        f"name: order\n{SERVICES}steps:\n  - id: pay\n    workflow: {{file: pay/payment.yaml}}\n",
    )
    write(
        tmp_path,
        "pay/payment.yaml",
        f"name: payment\n{SERVICES}steps:\n  - id: fraud\n    workflow: {{file: fraud.yaml}}\n",
    )
    write(
        tmp_path,
        "pay/fraud.yaml",
        f"name: fraud\n{SERVICES}steps:\n  - id: check\n    service: shop\n    method: POST /check\n",
    )
    workflow = load_workflow_file(tmp_path / "order.yaml")
    assert sorted(workflow.files) == ["pay/fraud.yaml", "pay/payment.yaml"]
    ref = workflow.step("pay").workflow
    assert ref is not None and ref.definition is not None
    assert ref.definition.name == "payment"
    assert sorted(ref.definition.files) == ["fraud.yaml"]
    again = load_workflow(workflow.source, path="order.yaml", files=workflow.files)
    assert again.hash == workflow.hash
    child = again.step("pay").workflow
    assert child is not None and child.definition is not None
    grandchild = child.definition.step("fraud").workflow
    assert grandchild is not None and grandchild.definition is not None
    assert grandchild.definition.name == "fraud"
    sent = maestro_client.WorkflowSource.from_file(tmp_path / "order.yaml")
    assert sent.files == dict(workflow.files)


A_RUNS_B = f"name: a\n{SERVICES}steps:\n  - id: b\n    workflow: {{file: b.yaml}}\n"
"""A parent `a.yaml` whose one step runs the file `b.yaml`."""


def test_recursion_through_files_is_reported_where_the_loop_closes(tmp_path: Path) -> None:
    """a.yaml runs b.yaml, which runs a.yaml: the error points at b.yaml's line and column."""
    write(tmp_path, "a.yaml", A_RUNS_B)
    write(
        tmp_path,
        "b.yaml",
        f"name: b\n{SERVICES}steps:\n  - id: back\n    workflow: {{file: a.yaml}}\n",
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        load_workflow_file(tmp_path / "a.yaml")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "recursion"
    assert str(diagnostic).startswith(f"{tmp_path / 'b.yaml'}:6:22: error: step 'back'")
    assert "(recursion: a.yaml → b.yaml → a.yaml)" in diagnostic.message


def test_a_file_child_naming_its_parent_by_name_is_recursion(tmp_path: Path) -> None:
    """The registered name of a workflow up the chain counts too."""
    write(tmp_path, "a.yaml", A_RUNS_B)
    write(
        tmp_path, "b.yaml", f"name: b\n{SERVICES}steps:\n  - id: back\n    workflow: {{name: a}}\n"
    )
    with pytest.raises(InvalidWorkflowError, match=r"recursion: a → b → a"):
        load_workflow_file(tmp_path / "a.yaml")


def test_a_child_file_with_problems_reports_them_in_the_child(tmp_path: Path) -> None:
    """The child's own diagnostics name the child's file and position."""
    write(tmp_path, "a.yaml", A_RUNS_B)
    write(
        tmp_path,
        "b.yaml",
        f"name: b\n{SERVICES}steps:\n  - id: x\n    service: nope\n    method: GET /\n",
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        load_workflow_file(tmp_path / "a.yaml")
    assert [str(d).split(": error")[0] for d in caught.value.diagnostics] == [
        f"{tmp_path / 'b.yaml'}:6:14"
    ]


def test_graphs_name_the_workflow_a_step_runs(tmp_path: Path) -> None:
    """The proto graph's sub_workflow and Mermaid's rounded box say what the child is."""
    workflow = load_workflow(
        f"name: a\n{SERVICES}steps:\n  - id: pay\n    workflow: {{name: payment, version: '2'}}\n"
    )
    (step,) = workflow_graph(workflow)
    assert (step.sub_workflow, step.service, step.method) == ("payment@2", "", "")
    assert 'step_pay("pay<br/>runs workflow payment@2")' in to_mermaid(workflow)


def fan_out(folder: Path, name: str, child: str, count: int) -> None:
    steps = "".join(f"  - id: s{n}\n    workflow: {{file: {child}}}\n" for n in range(count))
    write(folder, name, f"name: {name[:-5]}\n{SERVICES}steps:\n{steps}")


def test_files_run_many_times_are_bounded(tmp_path: Path) -> None:
    """A file run by many steps, each running another many times, is read once per chain,
    and the tree they expand to is bounded (100 child workflows in all)."""
    write(tmp_path, "leaf.yaml", f"name: leaf\n{SERVICES}steps:\n  - id: nap\n    sleep: 1s\n")
    fan_out(tmp_path, "middle.yaml", "leaf.yaml", 9)
    fan_out(tmp_path, "top.yaml", "middle.yaml", 9)
    workflow = load_workflow_file(tmp_path / "top.yaml")  # 9 + 81 children: allowed
    assert sorted(workflow.files) == ["leaf.yaml", "middle.yaml"]
    fan_out(tmp_path, "wide.yaml", "middle.yaml", 11)  # 11 + 99
    with pytest.raises(InvalidWorkflowError) as caught:
        load_workflow_file(tmp_path / "wide.yaml")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "too-many-sub-workflows"
    assert (diagnostic.location.line, diagnostic.location.column) == (26, 22)  # s10
