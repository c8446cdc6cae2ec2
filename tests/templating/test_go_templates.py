"""Go text/template forms, with the output Go's text/template (and sprig) gives on the same data.

Each expected value is written from the Go documentation: text/template for actions, pipelines
and the built-in functions, fmt for printf/print and how values print, sprig for default,
upper, lower, trim, quote, toJson, b64enc and b64dec. Data is what Go would decode from JSON
into interface{} values, with whole numbers as Go ints. A template that is one action alone
keeps the value's type, as every Maestro template does; text around it makes it text.
"""

from typing import Any

import pytest

from maestro_server.errors import TemplateError
from maestro_server.templating import Reference, TemplateSyntaxError, compile_template

DATA: dict[str, Any] = {
    "input": {
        "email": "ada@example.com",
        "name": "Ada",
        "plan": "pro",
        "vip": True,
        "n": 5,
        "tags": ["a", "b"],
        "map": {"b": 2, "a": 1},
        "matrix": [[1, 2], [3, 4]],
        "nested": {"a": {"b": "deep"}},
        "people": [{"name": "x"}, {"name": "y"}],
        "empty": [],
        "blank": "",
        "none": None,
    },
    "user": {"id": 7},
    "a": "A",
    "b": "B",
}


def render(source: str, data: dict[str, Any] = DATA) -> Any:
    return compile_template(source, "input.x").render(data)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("{{ .input.email }}", "ada@example.com", id="field path from dot"),
        pytest.param("{{ $.input.email }}", "ada@example.com", id="field path from $"),
        pytest.param('{{ index .input "email" }}', "ada@example.com", id="index of a map"),
        pytest.param("{{ index .input.tags 1 }}", "b", id="index of a list"),
        pytest.param("{{ index .input.matrix 1 0 }}", 3, id="index nested in lists"),
        pytest.param('{{ index .input.nested "a" "b" }}', "deep", id="index nested in maps"),
        pytest.param('{{ index .input "nick" }}', None, id="index of a missing key is nil"),
        pytest.param('nick={{ index .input "nick" }}', "nick=<no value>", id="nil prints so"),
        pytest.param('{{ index "héllo" 1 }}', 195, id="index of a string is a byte"),
        pytest.param('{{ .input.email | default "x" }}', "ada@example.com", id="default given"),
        pytest.param('{{ .input.nick | default "anon" }}', "anon", id="default of missing"),
        pytest.param('{{ .input.blank | default "x" }}', "x", id="default of empty string"),
        pytest.param("{{ .input.none | default 7 }}", 7, id="default of nil"),
        pytest.param("{{ 0 | default 7 }}", 7, id="default of zero"),
        pytest.param('{{ default "x" .input.plan }}', "pro", id="default written as a call"),
        pytest.param('{{ printf "%s-%s" .a .b }}', "A-B", id="printf"),
        pytest.param('{{ .a | printf "%s-%s" "x" }}', "x-A", id="piped value is the last arg"),
        pytest.param('{{ printf "%d items" (len .input.tags) }}', "2 items", id="printf %d"),
        pytest.param('{{ printf "%v" .input.tags }}', "[a b]", id="printf %v of a list"),
        pytest.param('{{ printf "%v" .input.map }}', "map[a:1 b:2]", id="printf %v of a map"),
        pytest.param('{{ printf "%q" "hi" }}', '"hi"', id="printf %q"),
        pytest.param('{{ printf "%s" 5 }}', "%!s(int=5)", id="printf wrong verb"),
        pytest.param('{{ printf "%d %d" 1 }}', "1 %!d(MISSING)", id="printf missing arg"),
        pytest.param('{{ printf "%d" 1 2 }}', "1%!(EXTRA int=2)", id="printf extra arg"),
        pytest.param('{{ printf "%6.2f|%-4s|" 3.14159 "ab" }}', "  3.14|ab  |", id="widths"),
        pytest.param('{{ printf "%05d|%+d|%x|%X" -42 5 255 255 }}', "-0042|+5|ff|FF", id="ints"),
        pytest.param('{{ printf "%v %v %v" 1.0 1e6 100000.0 }}', "1 1e+06 100000", id="floats"),
        pytest.param('{{ printf "%.2e|%g" 123456.789 0.0001 }}', "1.23e+05|0.0001", id="e g"),
        pytest.param('{{ printf "%t %v" true nil }}', "true <nil>", id="bool and nil"),
        pytest.param('{{ printf "%%d" }}', "%d", id="percent sign"),
        pytest.param('{{ print "a" 1 2 "b" }}', "a1 2b", id="print spaces between non-strings"),
        pytest.param('{{ println "a" 1 }}', "a 1\n", id="println"),
        pytest.param('{{ len "héllo" }}', 6, id="len of a string counts bytes"),
        pytest.param("{{ len .input.tags }}", 2, id="len of a list"),
        pytest.param("{{ len .input.map }}", 2, id="len of a map"),
        pytest.param('{{ eq .input.plan "pro" }}', True, id="eq"),
        pytest.param("{{ eq .input.n 1 2 5 }}", True, id="eq with several args"),
        pytest.param("{{ eq 1 2 }}", False, id="eq false"),
        pytest.param('{{ ne .input.plan "free" }}', True, id="ne"),
        pytest.param('{{ lt "a" "b" }}', True, id="lt of strings"),
        pytest.param("{{ le 2 2 }}", True, id="le"),
        pytest.param("{{ gt 1.5 2.5 }}", False, id="gt"),
        pytest.param("{{ ge .input.n 5 }}", True, id="ge"),
        pytest.param("{{ and 1 0 2 }}", 0, id="and gives the first empty arg"),
        pytest.param("{{ and 1 2 }}", 2, id="and gives the last arg"),
        pytest.param('{{ or 0 "" "x" }}', "x", id="or gives the first non-empty arg"),
        pytest.param('{{ or 0 "" }}', "", id="or gives the last arg"),
        pytest.param("{{ not 0 }}", True, id="not"),
        pytest.param("{{ and .input.vip (not .input.blank) }}", True, id="nested calls"),
        pytest.param("{{ .input.name | upper }}", "ADA", id="upper"),
        pytest.param('{{ "ÀB" | lower }}', "àb", id="lower"),
        pytest.param('{{ "  x \\n" | trim }}', "x", id="trim"),
        pytest.param('{{ quote "a\\"b" 5 }}', '"a\\"b" "5"', id="quote"),
        pytest.param("{{ .input.map | toJson }}", '{"a":1,"b":2}', id="toJson sorts keys"),
        pytest.param('{{ "<a&b>" | toJson }}', '"\\u003ca\\u0026b\\u003e"', id="toJson escapes"),
        pytest.param("{{ toJson 1.0 }}", "1", id="toJson of a whole float"),
        pytest.param("{{ toJson 0.0000001 }}", "1e-7", id="toJson of a small float"),
        pytest.param("{{ .input.tags | toJson }}", '["a","b"]', id="toJson of a list"),
        pytest.param('{{ b64enc "hi" }}', "aGk=", id="b64enc"),
        pytest.param('{{ "aGk=" | b64dec }}', "hi", id="b64dec"),
        pytest.param("{{ `raw \\n` }}", "raw \\n", id="raw string"),
        pytest.param('{{ "tab\\there" }}', "tab\there", id="escapes in strings"),
        pytest.param("{{ 0x1F }}", 31, id="hex number"),
    ],
)
def test_go_functions_and_values(source: str, expected: Any) -> None:
    """Each Go function, and each way Go prints a value, gives what Go gives."""
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("{{ if .input.vip }}gold{{ else }}silver{{ end }}", "gold", id="if else"),
        pytest.param("{{ if .input.blank }}x{{ else }}silver{{ end }}", "silver", id="if empty"),
        pytest.param(
            '{{ if eq .input.plan "team" }}T{{ else if eq .input.plan "pro" }}P'
            "{{ else }}F{{ end }}",
            "P",
            id="else if",
        ),
        pytest.param("{{ range .input.tags }}[{{ . }}]{{ end }}", "[a][b]", id="range dot"),
        pytest.param(
            "{{ range $i, $t := .input.tags }}{{ $i }}:{{ $t }} {{ end }}",
            "0:a 1:b ",
            id="range with index and element",
        ),
        pytest.param(
            "{{ range $k, $v := .input.map }}{{ $k }}={{ $v }};{{ end }}",
            "a=1;b=2;",
            id="range over a map in key order",
        ),
        pytest.param(
            "{{ range $t := .input.tags }}{{ $t }}{{ end }}", "ab", id="range one variable"
        ),
        pytest.param("{{ range .input.empty }}x{{ else }}none{{ end }}", "none", id="range else"),
        pytest.param(
            "{{ range .input.people }}{{ .name }}/{{ $.input.plan }} {{ end }}",
            "x/pro y/pro ",
            id="fields of dot and of $ in a range",
        ),
        pytest.param("{{ range 3 }}{{ . }}{{ end }}", "012", id="range over an int"),
        pytest.param("{{ with .input.nested.a }}{{ .b }}{{ end }}", "deep", id="with"),
        pytest.param("{{ with .input.blank }}x{{ else }}empty{{ end }}", "empty", id="with else"),
        pytest.param(
            "{{ with $p := .input.plan }}{{ $p }}{{ . }}{{ end }}", "propro", id="with variable"
        ),
        pytest.param("{{ $p := .input.plan }}{{ $p }}", "pro", id="variable"),
        pytest.param(
            "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2", id="assignment"
        ),
        pytest.param(
            "{{ $x := 1 }}{{ with 5 }}{{ $x := 2 }}{{ end }}{{ $x }}",
            "1",
            id="a declaration ends with its block",
        ),
        pytest.param("a{{/* a note */}}b", "ab", id="comment"),
        pytest.param("a  {{- /* a note */ -}}  b", "ab", id="comment trimming blanks"),
        pytest.param('{{ "a" }}  {{- "b" -}}  {{ "c" }}', "abc", id="trim markers"),
        pytest.param("{{ -3 }}", -3, id="a minus without space is a number"),
        pytest.param(
            "flag={{ .input.vip }} n={{ .input.n }} tags={{ .input.tags }} none={{ .input.none }}",
            "flag=true n=5 tags=[a b] none=<no value>",
            id="values print as Go prints them",
        ),
        pytest.param(
            '{{ .input.email | upper | printf "<%s>" }}', "<ADA@EXAMPLE.COM>", id="pipeline"
        ),
    ],
)
def test_go_actions(source: str, expected: Any) -> None:
    """if / else if / else, range, with, variables, comments and trim markers as in Go."""
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("{{ .input.tags | length }}", 2, id="a jinja2 filter"),
        pytest.param("{{ input.email }}", "ada@example.com", id="a path without a dot"),
        pytest.param("{{ .a ~ .b }}", "AB", id="jinja2 operators"),
        pytest.param("{% if .input.vip %}y{% endif %}", "y", id="jinja2 statements"),
        pytest.param("{{ .input.nick | default('x') }}", "x", id="jinja2 default"),
        pytest.param("{{ .input.n if .input.vip else 0 }}", 5, id="conditional expression"),
        pytest.param(
            '{{ if .input.vip }}{{ .a ~ "!" }}{% if .input.n > 3 %}+{% endif %}{{ end }}',
            "A!+",
            id="Go and jinja2 in one template",
        ),
    ],
)
def test_jinja2_forms_still_work(source: str, expected: Any) -> None:
    """What jinja2 reads and Go does not is left to jinja2, with its meaning."""
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param('{{ eq .input.n "5" }}', "incompatible types for comparison", id="eq types"),
        pytest.param("{{ eq .input.tags .input.tags }}", "non-comparable type", id="eq list"),
        pytest.param("{{ lt true false }}", "invalid type for comparison", id="lt of bools"),
        pytest.param("{{ index .input.tags 5 }}", "index out of range: 5", id="index range"),
        pytest.param('{{ index .input.tags "a" }}', "cannot index slice/array", id="index type"),
        pytest.param('{{ index .input "nick" "x" }}', "index of nil pointer", id="index of nil"),
        pytest.param("{{ len .input.n }}", "len of type int", id="len of a number"),
        pytest.param("{{ upper .input.n }}", "expected string", id="upper of a number"),
        pytest.param('{{ b64dec "%%%" }}', "not base64", id="b64dec of junk fails"),
        pytest.param("{{ range .input.email }}x{{ end }}", "range can't iterate", id="range"),
        pytest.param("{{ .input.nope }}", "has no attribute 'nope'", id="missing key"),
        pytest.param("x{{ .input.nope }}", "has no attribute 'nope'", id="missing in text"),
        pytest.param("{{ if .input.nope }}x{{ end }}", "has no attribute 'nope'", id="in if"),
        pytest.param('{{ printf "%50000d" 1 }}', "SecurityError", id="printf width bomb"),
        pytest.param("{{ range 1000000 }}{{ end }}", "SecurityError", id="range bomb"),
    ],
)
def test_go_errors_at_render(source: str, message: str) -> None:
    """Calls Go refuses fail with Go's reason; a missing key fails (Go's missingkey=error)."""
    with pytest.raises(TemplateError, match=message):
        render(source)


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        pytest.param(
            '{{ .x | replace "a" "b" }}',
            1,
            9,
            "function 'replace' is not supported: write the jinja2 filter: "
            '{{ .s | replace("old", "new") }}',
            id="an unsupported sprig function",
        ),
        pytest.param(
            "id\n  {{ .x | toString }}",
            2,
            11,
            "function 'toString' is not supported: write {{ .x | string }}",
            id="on a later line",
        ),
        pytest.param(
            '{{ template "x" }}',
            1,
            4,
            "{{ template }}: named templates are not supported: write the text where it is used",
            id="named templates",
        ),
        pytest.param(
            "{{ range .a }}{{ break }}{{ end }}",
            1,
            18,
            "{{ break }}: break is not supported: skip items with {{ if … }} inside the range",
            id="break",
        ),
        pytest.param(
            "{{ if .a }}x", 1, 4, "{{ if }} is not closed: add {{ end }}", id="unclosed if"
        ),
        pytest.param(
            "x{{ end }}",
            1,
            5,
            "{{ end }} without {{ if }}, {{ range }} or {{ with }}",
            id="end without a block",
        ),
        pytest.param(
            "{{ printf 'x' .a }}",
            1,
            11,
            "'x' is a Go character (a number), not text: write \"x\"",
            id="single quotes in a Go call",
        ),
        pytest.param("{{ $y }}", 1, 4, "undefined variable: $y", id="undefined variable"),
        pytest.param(
            "{{ . }}",
            1,
            4,
            "'.' alone is the whole context; name what to read, e.g. .input",
            id="dot alone",
        ),
        pytest.param(
            "{{ len .a .b }}", 1, 4, "wrong number of args for len: want 1 got 2", id="arity"
        ),
        pytest.param(
            '{{ printf "%d" len .a }}',
            1,
            16,
            "to pass the result of len as an argument, write it in parentheses: (len …)",
            id="a call as an argument",
        ),
        pytest.param(
            "{{ html .x }}",
            1,
            4,
            "function 'html' is not supported: write {{ .s | escape }}",
            id="a Go call jinja2 would misread as an attribute",
        ),
        pytest.param(
            "{{ if .a }}{{ else with .b }}{{ end }}",
            1,
            20,
            "{{ else with }} is not supported: write {{ else }}{{ with … }}…{{ end }}{{ end }}",
            id="else with",
        ),
    ],
)
def test_unsupported_forms_are_located_with_what_to_write(
    source: str, line: int, column: int, message: str
) -> None:
    """A form that is neither supported Go nor jinja2 fails at compile time, at its place."""
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template(source, "f")
    error = caught.value
    assert error.offset is not None
    line_start = source.rfind("\n", 0, error.offset) + 1
    assert (error.line, error.offset - line_start + 1, error.message) == (line, column, message)


def test_go_forms_list_what_they_read() -> None:
    """References are found in Go forms too, so validation checks them before anything runs."""
    template = compile_template(
        '{{ index .user "id" }}{{ range .input.tags }}{{ .x }}{{ $.steps.a.output }}{{ end }}',
        "f",
    )
    assert template.references == {Reference("user"), Reference("input"), Reference("steps", "a")}


def test_a_go_template_compiles_to_jinja2_once() -> None:
    """The translation happens at compile time; rendering is plain jinja2 (no Go parsing)."""
    template = compile_template('{{ if .input.vip }}{{ printf "%s!" .a }}{{ end }}', "f")
    assert template.render(DATA) == "A!"
    assert template.render({**DATA, "input": {"vip": False}}) == ""
