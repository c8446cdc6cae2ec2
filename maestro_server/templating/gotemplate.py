"""Go text/template → jinja2, once, when a template compiles.

Every `{{ … }}` action is read as Go first: `{{ if }}`/`{{ else }}`/`{{ end }}`, `range`, `with`,
`{{/* comments */}}`, variables and pipelines become the jinja2 statements and `go_…` filters
with the same meaning (gofuncs.py). An action that is not Go but is jinja2 (`{{ a ~ b }}`,
`{{ x | default('y') }}`) is left to jinja2; one that is neither fails with its offset and what
to write instead. `{% … %}`, `{# … #}` and raw blocks are copied as they are.

Go prints an action's value as fmt does (`true`, `[1 2]`, `<no value>` for nil); a template that
is one action alone keeps the value's type, as every Maestro template does.
"""

from __future__ import annotations

import re

from jinja2 import TemplateSyntaxError as JinjaSyntaxError
from jinja2 import nodes

from maestro_server.templating.environment import ENVIRONMENT
from maestro_server.templating.goblocks import Translator, control_action, expression_action
from maestro_server.templating.goemit import FUNCTIONS
from maestro_server.templating.goparse import (
    GoSyntaxError,
    Parser,
    Token,
    UnknownFunctionError,
    tokenize,
)
from maestro_server.templating.hints import function_hint
from maestro_server.templating.syntax import rewrite_leading_dots

_OPEN = re.compile(r"\{\{|\{%|\{#")
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}")
_ENDRAW = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_CONTROL = frozenset({"if", "else", "end", "range", "with"})
_UNSUPPORTED = {
    "define": "named templates are not supported: write the text where it is used",
    "template": "named templates are not supported: write the text where it is used",
    "block": "named templates are not supported: write the text where it is used",
    "break": "break is not supported: skip items with {{ if … }} inside the range",
    "continue": "continue is not supported: skip items with {{ if … }} inside the range",
}


def translate(source: str) -> str:
    """The jinja2 source with every Go action translated; raises GoSyntaxError."""
    translator = Translator(source, _is_single(source))
    position = 0
    while (match := _OPEN.search(source, position)) is not None:
        start = match.start()
        translator.out.append(source[position:start])
        if match.group() == "{{":
            end = _action_end(source, start + 2)
            if end < 0:  # unterminated: jinja2 reports it with its own words
                translator.out.append(source[start:])
                position = len(source)
                break
            _action(translator, start, end)
            position = end + 2
        else:
            position = _copy_jinja(translator, match.group(), start)
    translator.out.append(source[position:])
    if translator.blocks:
        block = translator.blocks[-1]
        raise GoSyntaxError(
            f"{{{{ {block.kind} }}}} is not closed: add {{{{ end }}}}", block.offset
        )
    return "".join(translator.out)


def _copy_jinja(translator: Translator, opener: str, start: int) -> int:
    source = translator.source
    if opener == "{%" and (raw := _RAW.match(source, start)) is not None:
        endraw = _ENDRAW.search(source, raw.end())
        end = len(source) if endraw is None else endraw.end()
    else:
        closer = "#}" if opener == "{#" else "%}"
        found = (
            _action_end(source, start + 2, closer) if opener == "{%" else source.find(closer, start)
        )
        end = len(source) if found < 0 else found + 2
    translator.out.append(source[start:end])
    return end


def _action_end(source: str, position: int, closer: str = "}}") -> int:
    """Where the action's closer starts, skipping quoted text; -1 when there is none."""
    n = len(source)
    while position < n:
        char = source[position]
        if source.startswith(closer, position):
            return position
        if char in "\"'`":
            position += 1
            while position < n and source[position] != char:
                position += 2 if source[position] == "\\" and char != "`" else 1
        position += 1
    return -1


def _is_single(source: str) -> bool:
    stripped = source.strip()
    if not stripped.startswith("{{"):
        return False
    end = _action_end(stripped, 2)
    return end == len(stripped) - 2


def _action(translator: Translator, start: int, end: int) -> None:
    source = translator.source
    body = source[start + 2 : end]
    left = body.startswith("-") and (len(body) == 1 or body[1].isspace())
    right = body.endswith("-") and len(body) > 1 and body[-2].isspace()
    inner_start = start + 2 + (1 if left else 0)
    inner = source[inner_start : end - (1 if right else 0)]
    trims = ("-" if left else "", "-" if right else "")
    if inner.strip().startswith("/*") and inner.strip().endswith("*/"):
        if left or right:
            translator.out.append(f"{{#{trims[0]} {trims[1]}#}}")
        return
    try:
        tokens = tokenize(inner, inner_start)
    except GoSyntaxError as exc:
        _not_go(translator, body, start, exc, committed=False)
        return
    first = tokens[0] if tokens else None
    if first is not None and first.kind == "ident":
        keyword = first.text
        spaced = len(tokens) == 1 or tokens[1].spaced
        if keyword in _UNSUPPORTED and spaced:
            raise GoSyntaxError(f"{{{{ {keyword} }}}}: {_UNSUPPORTED[keyword]}", first.offset)
        if keyword in _CONTROL and spaced:
            control_action(
                translator, keyword, tokens[1:], end=end, trims=trims, offset=first.offset
            )
            return
    go_shaped = _looks_like_go(tokens)
    try:
        parser = Parser(tokens, end)
        pipeline = parser.pipeline()
        parser.expect_end()
        for name, offset in parser.functions:
            if name not in FUNCTIONS:
                raise UnknownFunctionError(name, offset)
    except GoSyntaxError as exc:
        committed = go_shaped or isinstance(exc, UnknownFunctionError)
        _not_go(translator, body, start, exc, committed=committed, go_shaped=go_shaped)
        return
    # It reads as Go, with functions Go has: from here on, problems are Go's to report.
    translator.out.append(expression_action(translator, pipeline, trims))


def _not_go(
    translator: Translator,
    body: str,
    start: int,
    error: GoSyntaxError,
    *,
    committed: bool,
    go_shaped: bool = False,
) -> None:
    """Keep an action that jinja2 reads; otherwise fail with the Go reading's error.

    A Go-shaped call (`f .x "y"`) is never handed to jinja2, which would read `f .x` as the
    attribute `f.x`.
    """
    if not committed or (not go_shaped and _is_jinja(body)):
        translator.out.append("{{" + body + "}}")
        return
    message = error.message
    if isinstance(error, UnknownFunctionError):
        message = f"{message}: {function_hint(error.name)}"
    raise GoSyntaxError(message, error.offset if error.offset >= start else start)


def _is_jinja(body: str) -> bool:
    try:
        ast = ENVIRONMENT.parse(rewrite_leading_dots("{{" + body + "}}"))
    except JinjaSyntaxError:
        return False
    filters = all(f.name in ENVIRONMENT.filters for f in ast.find_all(nodes.Filter))
    return filters and all(t.name in ENVIRONMENT.tests for t in ast.find_all(nodes.Test))


def _looks_like_go(tokens: list[Token]) -> bool:
    """Whether an action is written in Go's own forms, which jinja2 has no form for.

    Those are `$`, raw strings, `:=`, and a function given data with spaces (`index .m "k"`,
    `.x | default "y"`).
    """
    if any(t.kind in ("var", "raw", "declare") for t in tokens):
        return True
    return any(
        token.kind == "ident"
        and (index == 0 or tokens[index - 1].kind == "pipe")
        and index + 1 < len(tokens)
        and tokens[index + 1].spaced
        and tokens[index + 1].kind in ("field", "string", "char", "number", "var", "dot", "lparen")
        for index, token in enumerate(tokens)
    )
