"""HTTP method paths compile into literal text and placed templates, and expand as data."""

import pytest

from maestro_server.definition import load_workflow
from maestro_server.errors import TemplateError
from maestro_server.model.workflow import HttpMethod
from maestro_server.templating.path import Placement, compile_http_path


@pytest.mark.parametrize(
    ("source", "placements"),
    [
        pytest.param("/contacts/{{ .id }}", [Placement.SEGMENT], id="a whole segment"),
        pytest.param("/contacts/c-{{ .id }}.json", [Placement.SEGMENT], id="inside a segment"),
        pytest.param("/files/{{ .name | path }}", [Placement.SPAN], id="spanning with path"),
        pytest.param(
            "/a/{{ .x }}/b?q={{ .q }}&r=1", [Placement.SEGMENT, Placement.QUERY], id="query"
        ),
        pytest.param("/{{ .a }}{{ .b | path }}", [Placement.SEGMENT, Placement.SPAN], id="both"),
    ],
)
def test_each_template_knows_its_place(source: str, placements: list[Placement]) -> None:
    """Validation tells a template inside a segment from one spanning segments or in the query."""
    compiled = compile_http_path(source, "method")
    assert [e.placement for e in compiled.expansions] == placements
    assert compiled.source == source


@pytest.mark.parametrize(
    ("source", "context", "rendered"),
    [
        pytest.param("/c/{{ .id }}", {"id": "a/b?c#d%e"}, "/c/a%2Fb%3Fc%23d%25e", id="reserved"),
        pytest.param("/c/{{ .id }}", {"id": "AZaz09-._~"}, "/c/AZaz09-._~", id="unreserved kept"),
        pytest.param("/c/{{ .n }}/{{ .b }}", {"n": 1.5, "b": True}, "/c/1.5/true", id="scalars"),
        pytest.param("/a b/ü", {}, "/a%20b/%C3%BC", id="literal text encoded"),
        pytest.param("/a%20b/{{ .x }}", {"x": "%20"}, "/a%20b/%2520", id="literal escapes kept"),
        pytest.param("/x?", {}, "/x?", id="empty query kept"),
    ],
)
def test_rendering(source: str, context: dict[str, object], rendered: str) -> None:
    """Values are percent-encoded; the author's text is kept."""
    assert compile_http_path(source, "method").render(context) == rendered


def test_a_value_made_into_dot_dot_with_its_neighbour_is_refused() -> None:
    """Two values that together make `..` are refused like one."""
    path = compile_http_path("/a/{{ .x }}{{ .y }}/b", "method")
    with pytest.raises(TemplateError, match=r"the segment '\.\.'"):
        path.render({"x": ".", "y": "."})


def test_method_path_loads_into_the_model() -> None:
    """A workflow's HTTP method keeps its source for display and compiles its path."""
    workflow = load_workflow("""\
name: w
services:
  crm: {type: http, endpoint: "http://crm"}
steps:
  - {id: a, service: crm, method: "GET /docs/{{ .input.doc['_id'] }}/{{ .input.f | path }}"}
""")
    method = workflow.steps[0].method
    assert isinstance(method, HttpMethod)
    assert str(method) == "GET /docs/{{ .input.doc['_id'] }}/{{ .input.f | path }}"
    rendered = method.path.render({"input": {"doc": {"_id": "x/1"}, "f": "a/b"}})
    assert rendered == "/docs/x%2F1/a/b"
