"""The shortcuts that spare a workflow's load work give what the long ways give.

A plain path (`{{ .user.id }}`) is compiled by jinja2 only if a render leaves the path, and its
references are read from the path; a read written `root.a.b` is located without a pattern.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maestro_server.errors import TemplateError
from maestro_server.templating import compile_template
from maestro_server.templating.reads import _first_dotted, _search
from maestro_server.templating.values import _references, jinja_ast

ROOTS = ["input", "user", "steps", "self", "range", "namespace", "uuid", "now", "item", "x_1"]
TAILS = ["", ".a", ".a.b", "['a']", '["a b"].c', ".steps", ".steps.create_user.id", "['steps']"]


@pytest.mark.parametrize("root", ROOTS)
@pytest.mark.parametrize("tail", TAILS)
def test_plain_path_references_are_jinja2s(root: str, tail: str) -> None:
    """References of a plain path equal those jinja2's analysis finds (its globals and `self`
    are not read from the context)."""
    source = "{{ ." + root + tail + " }}"
    ast, _ = jinja_ast(source)
    assert compile_template(source, "f").references == _references(ast)


@pytest.mark.parametrize(
    ("source", "context", "expected"),
    [
        ("{{ .input.missing }}", {"input": {}}, "'dict object' has no attribute 'missing'"),
        ("{{ .input.a.b }}", {"input": {"a": 5}}, "'int object' has no attribute 'b'"),
        ("{{ .user }}", {}, "'user' is undefined"),
        ("{{ .steps.x.id }}", {"steps": {"x": None}}, "'None' has no attribute 'id'"),
    ],
)
def test_a_plain_path_that_misses_fails_as_jinja2_says(
    source: str, context: dict[str, object], expected: str
) -> None:
    """Leaving the path compiles the expression then, with jinja2's own error (every time)."""
    template = compile_template(source, "f")
    for _ in range(2):
        with pytest.raises(TemplateError) as caught:
            template.render(context)
        assert expected in caught.value.message


_PIECES = st.sampled_from(
    [".", "$", " ", "[", "]", "'", '"', "index ", "(", ")", "|", "{{ ", " }}", ".a", ".b", ".0"]
)
_NAMES = st.sampled_from(["in", "input", "user", "a", "b", "0", "a b", "x.y", "_", "é"])


@given(
    st.lists(st.one_of(_PIECES, _NAMES), max_size=10).map("".join),
    st.sampled_from(["input", "in", "user", "a", "é"]),
    st.lists(st.one_of(_NAMES, st.integers(0, 3)), max_size=3).map(tuple),
)
def test_a_dotted_read_is_where_the_search_finds_it(
    source: str, root: str, keys: tuple[str | int, ...]
) -> None:
    """Whenever the shortcut answers, the pattern search answers the same."""
    dotted = root + "".join(f".{key}" for key in keys)
    for text in (source, source + dotted, dotted + source, source + " " + dotted):
        found = _first_dotted(text, root, keys)
        if found is not None:
            assert found == _search(text, root, keys)
