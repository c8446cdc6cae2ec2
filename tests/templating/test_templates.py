"""Templates: Go-style dot paths, native types, Maestro's filters, strictness and the sandbox."""

import base64
import re
import uuid

import pytest

from maestro_server.errors import TemplateError
from maestro_server.templating import Reference, TemplateSyntaxError, compile_template
from maestro_server.templating.syntax import rewrite_leading_dots


@pytest.mark.parametrize(
    ("source", "rewritten"),
    [
        pytest.param("{{ .input.email }}", "{{ input.email }}", id="leading dot"),
        pytest.param("{{ input.email }}", "{{ input.email }}", id="plain jinja untouched"),
        pytest.param(
            "{{ ('orders/' ~ .input.order_id) | b64encode }}",
            "{{ ('orders/' ~ input.order_id) | b64encode }}",
            id="inside an expression",
        ),
        pytest.param("{{ 'a.b' ~ .x }}", "{{ 'a.b' ~ x }}", id="dot in a string literal kept"),
        pytest.param('{{ "it\'s .x" ~ .y }}', '{{ "it\'s .x" ~ y }}', id="quotes inside string"),
        pytest.param(
            "{% if .a and not .b %}x{% endif %}",
            "{% if a and not b %}x{% endif %}",
            id="after keywords",
        ),
        pytest.param("{{ f(x).y }}", "{{ f(x).y }}", id="attribute after call kept"),
        pytest.param("{{ [.a, .b][0] }}", "{{ [a, b][0] }}", id="list items"),
        pytest.param("{{ 1.5 }}", "{{ 1.5 }}", id="float kept"),
        pytest.param("id .x {{ .y }}", "id .x {{ y }}", id="text outside tags kept"),
        pytest.param(
            "{# .x #}{% raw %}{{ .y }}{% endraw %}",
            "{# .x #}{% raw %}{{ .y }}{% endraw %}",
            id="comments and raw blocks kept",
        ),
        pytest.param("{{- .x -}}", "{{- x -}}", id="whitespace control"),
    ],
)
def test_leading_dots_are_rewritten(source: str, rewritten: str) -> None:
    """Only dots that start a path inside a tag are dropped."""
    assert rewrite_leading_dots(source) == rewritten


@pytest.mark.parametrize(
    ("source", "value"),
    [
        pytest.param("{{ .input.n }}", 42, id="number keeps its type"),
        pytest.param("{{ .input.ok }}", True, id="bool keeps its type"),
        pytest.param("{{ .input.obj }}", {"a": [1, 2]}, id="object keeps its type"),
        pytest.param("  {{ .input.n }} ", 42, id="surrounding blanks ignored"),
        pytest.param("n={{ .input.n }}", "n=42", id="mixed text renders to a string"),
        pytest.param("{{ .input.n }}{{ .input.n }}", "4242", id="two tags render to a string"),
        pytest.param("{{ .input.obj.a | length }}", 2, id="filters"),
        pytest.param("{{ .input.missing | default('x') }}", "x", id="default of undefined"),
        pytest.param("{{ .input.none | default('x') }}", "x", id="default of null"),
        pytest.param("{{ .input.obj | tojson }}", '{"a": [1, 2]}', id="tojson"),
        pytest.param("{{ 'hi' | b64encode }}", base64.b64encode(b"hi").decode(), id="b64encode"),
        pytest.param("{{ 'aGk=' | b64decode }}", "hi", id="b64decode"),
        pytest.param("{{ .input.obj.a | map('string') | list }}", ["1", "2"], id="lists"),
        pytest.param("{{ .order.items }}", ["apple"], id="a key named like a dict method"),
        pytest.param("{{ .steps.create_user.output.id }}", "u1", id="steps by id"),
        pytest.param("{{ {'k': .input.n} }}", {"k": 42}, id="object literal"),
    ],
)
def test_rendering(source: str, value: object) -> None:
    """A lone `{{ … }}` keeps the value's type; anything else is text."""
    context = {
        "input": {"n": 42, "ok": True, "obj": {"a": [1, 2]}, "none": None},
        "order": {"items": ["apple"]},
        "steps": {"create_user": {"output": {"id": "u1"}}},
    }
    assert compile_template(source, "input.x").render(context) == value


def test_functions_uuid_and_now() -> None:
    """uuid() gives a fresh UUID and now() an RFC 3339 UTC time."""
    rendered = compile_template("{{ uuid() }}|{{ now() }}", "f").render({})
    assert isinstance(rendered, str)
    first, second = rendered.split("|")
    assert uuid.UUID(first).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", second)


def test_references_are_found_statically() -> None:
    """A template lists the context names it reads, and the steps it reads under .steps."""
    template = compile_template(
        "{{ .user.id ~ .steps.billing.output.id ~ steps['crm-1'].output }}{% set x = 1 %}{{ x }}",
        "f",
    )
    assert template.references == {
        Reference("user"),
        Reference("steps", "billing"),
        Reference("steps", "crm-1"),
    }


def test_undefined_names_the_field() -> None:
    """Strict undefined: a missing key fails with the field and the template."""
    template = compile_template("{{ .user.nmae }}", "input.user_id")
    with pytest.raises(TemplateError) as caught:
        template.render({"user": {"name": "x"}})
    assert caught.value.field == "input.user_id"
    assert "has no attribute 'nmae'" in caught.value.message
    assert "{{ .user.nmae }}" in caught.value.message


def test_undefined_inside_text_also_fails() -> None:
    """Mixed text does not silently render an empty string for a missing value."""
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        compile_template("id-{{ .missing }}", "f").render({})


def test_syntax_error_carries_its_line() -> None:
    """A syntax error says what is wrong and on which line of the template."""
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template("a\n{{ .x + }}", "f")
    assert caught.value.line == 2


def test_data_is_never_rendered_twice() -> None:
    """An input value that looks like a template comes out literally."""
    template = compile_template("{{ .input.comment }}", "f")
    assert template.render({"input": {"comment": "{{ 7*7 }}"}}) == "{{ 7*7 }}"


def test_non_json_results_are_refused() -> None:
    """A template that yields a function (not data) fails clearly."""
    with pytest.raises(TemplateError, match="not a JSON value"):
        compile_template("{{ now }}", "f").render({})


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}", id="subclasses walk"),
        pytest.param("{{ cycler.__init__.__globals__ }}", id="globals of a global"),
        pytest.param("{{ ''.format.__globals__ }}", id="format globals"),
        pytest.param("{{ 'a' | attr('__class__') }}", id="attr filter"),
        pytest.param("{{ '{0.__class__}'.format(1) }}", id="format string"),
        pytest.param("{{ 9 ** 99999 }}", id="power bomb"),
        pytest.param("{{ 'a' * 10000000 }}", id="string bomb"),
        pytest.param("{{ .input.items.append(1) }}", id="mutation"),
    ],
)
def test_sandbox_refuses_escapes(source: str) -> None:
    """Known escapes and bombs end in a TemplateError, never in code running."""
    with pytest.raises(TemplateError):
        compile_template(source, "f").render({"input": {"items": []}})


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("{{ (['x' * 100000] * 1000) | join }}", id="join of a huge list"),
        pytest.param("{{ 'a' | center(50000000) }}", id="center width"),
        pytest.param("{{ '{:>50000000}'.format(1) }}", id="str.format width"),
        pytest.param("{{ '%50000000s' | format(1) }}", id="format filter width"),
        pytest.param("{{ '%50000000s' % 1 }}", id="percent operator width"),
        pytest.param("{{ (9 ** 1000) ** 1000 }}", id="chained powers"),
    ],
)
def test_memory_bombs_are_refused(source: str) -> None:
    """Operations that would build enormous values stop with a TemplateError."""
    with pytest.raises(TemplateError, match="SecurityError"):
        compile_template(source, "f").render({})


def test_rendered_text_is_capped() -> None:
    """A template that renders more than a million characters fails with its field."""
    template = compile_template(
        "{% for i in range(2000) %}{{ 'x' * 999 }}{% endfor %}", "input.blob"
    )
    with pytest.raises(TemplateError, match="renders over 1000000 characters") as caught:
        template.render({})
    assert caught.value.field == "input.blob"
