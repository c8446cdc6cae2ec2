"""Property tests: no input makes the loader or the templates crash with anything but a diagnostic."""

import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro_server.definition import load_workflow
from maestro_server.definition.parser import WORKFLOW_KEYS
from maestro_server.definition.steps import STEP_KEYS
from maestro_server.errors import InvalidWorkflowError, TemplateError
from maestro_server.model.workflow import Workflow
from maestro_server.templating import TemplateSyntaxError, compile_template

FUZZ = settings(
    max_examples=int(os.environ.get("MAESTRO_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_KEYS = st.sampled_from(
    [
        *WORKFLOW_KEYS,
        *STEP_KEYS,
        "type",
        "endpoint",
        "grpc",
        "http",
        "retry",
        "max_attempts",
        "a",
        "<<",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["{{ .input.x }}", "{{", "5s", "grpc", "http", "POST /x", "auth:1"]),
)
_DOCUMENTS: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_KEYS, children, max_size=6)
    ),
    max_leaves=30,
)


def _load(source: str | bytes) -> Workflow | None:
    try:
        return load_workflow(source, path="fuzz.yaml")
    except InvalidWorkflowError as exc:
        assert exc.diagnostics
        for diagnostic in exc.diagnostics:
            assert diagnostic.location.file == "fuzz.yaml"
            assert diagnostic.location.line >= 1 and diagnostic.location.column >= 1
            assert diagnostic.message
        return None


@FUZZ
@given(st.text(max_size=300))
def test_any_text_loads_or_gives_diagnostics(text: str) -> None:
    """Arbitrary text either loads or fails with located diagnostics."""
    _load(text)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_load_or_give_diagnostics(data: bytes) -> None:
    """Arbitrary bytes (bad UTF-8 included) either load or fail with located diagnostics."""
    _load(data)


@FUZZ
@given(_DOCUMENTS)
def test_any_yaml_structure_loads_or_gives_diagnostics(document: Any) -> None:
    """Well-formed YAML of any shape, with the language's own keys, never crashes the parser."""
    _load(yaml.safe_dump(document))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["input", "output", "when", "method", "depends_on", "compensate"]),
        _DOCUMENTS,
        max_size=4,
    )
)
def test_steps_with_random_parts_load_or_give_diagnostics(parts: dict[str, Any]) -> None:
    """A valid frame around random step parts never crashes the parser."""
    step = {"id": "s", "service": "auth", "method": "A", **parts}
    document = {
        "name": "fuzz",
        "services": {"auth": {"type": "grpc", "endpoint": "auth:50051"}},
        "steps": [step, {"id": "t", "service": "auth", "method": "B"}],
    }
    _load(yaml.safe_dump(document))


_TEMPLATE_PIECES = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        ".",
        ".input",
        ".x",
        "|",
        "default",
        "(",
        ")",
        "'",
        '"',
        "~",
        " ",
        "1",
        "if",
        "else",
        "[",
        "]",
        "tojson",
        "b64decode",
        "steps",
        ".steps.a",
    ]
)


@FUZZ
@given(st.lists(_TEMPLATE_PIECES, max_size=12).map("".join), _DOCUMENTS)
def test_templates_compile_and_render_or_fail_typed(source: str, value: Any) -> None:
    """Any template either fails to compile with a syntax error or renders to JSON or a TemplateError."""
    try:
        template = compile_template(source, "input.f")
    except TemplateSyntaxError as exc:
        assert exc.line >= 1
        return
    try:
        template.render({"input": value, "x": value, "steps": {"a": {"output": value}}})
    except TemplateError as exc:
        assert exc.field == "input.f"
