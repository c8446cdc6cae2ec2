"""HTTP method paths, whose templates expand as data: one path segment each, as RFC 6570 does.

`DELETE /contacts/{{ .input.id }}` with the id `../users/1` calls `/contacts/..%2Fusers%2F1`,
never `/users/1`: a value is percent-encoded (RFC 3986 unreserved characters kept), so `/`,
`?`, `#` and `%` never come out of it as syntax, and a value that would make a segment empty,
`.` or `..` is refused. A template that ends in the `path` filter (`{{ .input.file | path }}`)
may span segments: each of its `/`-separated parts is encoded, and none may be empty, `.` or
`..`. After a `?` written in the path, a value is one query component.

The literal text is the author's: kept as written, with characters a URL cannot hold (spaces,
non-ASCII) percent-encoded. A `#` (a fragment is never sent) and `.`/`..` segments (clients
resolve them away) are refused when the workflow is loaded, as are `{% … %}` blocks.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from jinja2 import nodes

from maestro_server.errors import TemplateError
from maestro_server.templating.environment import ENVIRONMENT
from maestro_server.templating.syntax import _string_end, rewrite_leading_dots
from maestro_server.templating.values import Template, compile_template

PATH_FILTER = "path"
_PATH_SAFE = "/!$&'()*+,;=:@%"
_QUERY_SAFE = _PATH_SAFE + "?"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_OPENERS = {"(": ")", "[": "]", "{": "}"}


class PathSyntaxError(Exception):
    """A method path that cannot be expanded safely; `offset` is where, in the path text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class Placement(enum.Enum):
    """Where a template's value lands, deciding how it is encoded."""

    SEGMENT = "segment"
    """In the path, within one segment (all of it, or part of it): `/contacts/{{ .id }}`."""
    SPAN = "span"
    """In the path, across segments, asked for with `| path`: `/files/{{ .name | path }}`."""
    QUERY = "query"
    """After a `?` written in the path: one query component, `?q={{ .q }}`."""


@dataclass(frozen=True, slots=True)
class Expansion:
    """One `{{ … }}` of a path and where it stands."""

    template: Template
    placement: Placement
    offset: int
    """Where its `{{` stands in the path text."""


Part = str | Expansion


@dataclass(frozen=True, slots=True, eq=False)
class HttpPath:
    """A compiled method path; `render` gives the path (and query) exactly as sent."""

    source: str
    field: str
    path: tuple[Part, ...]
    query: tuple[Part, ...] | None = None
    """After the `?` written in the path, without it; None when there is no `?`."""

    @property
    def expansions(self) -> tuple[Expansion, ...]:
        """Every template of the path, in order."""
        parts = self.path + (self.query or ())
        return tuple(part for part in parts if isinstance(part, Expansion))

    def render(self, context: Mapping[str, Any]) -> str:
        """The encoded path; raises TemplateError naming the field."""
        path = _Segments(self.field)
        for part in self.path:
            if isinstance(part, str):
                path.add_literal(part)
            elif part.placement is Placement.SPAN:
                path.add_span(part, self._text(part, context))
            else:
                path.add_value(part, self._text(part, context))
        rendered = path.finish()
        if self.query is None:
            return rendered
        query = (
            part if isinstance(part, str) else _encode(self._text(part, context), self.field)
            for part in self.query
        )
        return rendered + "?" + "".join(query)

    def _text(self, part: Expansion, context: Mapping[str, Any]) -> str:
        value = part.template.render(context)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return value
        if isinstance(value, int | float):
            return json.dumps(value)
        kind = "null" if value is None else "an object" if isinstance(value, dict) else "a list"
        raise TemplateError(
            f"`{part.template.source}` renders {kind}; a URL takes text or a number",
            step=None,
            field=self.field,
        )


class _Segments:
    """The path as it is built, checking each segment a value helped make."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.out: list[str] = []
        self.segment = ""
        self.made_by: Expansion | None = None

    def add_literal(self, text: str) -> None:
        first, *rest = text.split("/")
        self.segment += first
        for piece in rest:
            self._close()
            self.segment, self.made_by = piece, None
        self.out.append(text)

    def add_value(self, part: Expansion, value: str) -> None:
        self._append(part, _encode(value, self.field))

    def add_span(self, part: Expansion, value: str) -> None:
        pieces = value.split("/")
        for piece in pieces:
            if piece in ("", ".", ".."):
                raise TemplateError(
                    f"`{part.template.source}` renders {value!r}, which holds the segment "
                    f"{piece!r}; the path filter takes segments that are neither empty, "
                    "'.' nor '..'",
                    step=None,
                    field=self.field,
                )
        encoded = [_encode(piece, self.field) for piece in pieces]
        self._append(part, encoded[0])
        for piece in encoded[1:]:
            self._close()
            self.segment = piece
        self.out[-1] = "/".join(encoded)

    def _append(self, part: Expansion, encoded: str) -> None:
        self.segment += encoded
        self.made_by = part
        self.out.append(encoded)

    def finish(self) -> str:
        self._close()
        return "".join(self.out)

    def _close(self) -> None:
        if self.made_by is not None and self.segment in ("", ".", ".."):
            what = "an empty segment" if not self.segment else f"the segment {self.segment!r}"
            raise TemplateError(
                f"`{self.made_by.template.source}` would make {what} of the path; a value "
                "must stay inside its segment",
                step=None,
                field=self.field,
            )


def _encode(value: str, field: str) -> str:
    try:
        return quote(value, safe="")
    except UnicodeEncodeError as exc:
        raise TemplateError(f"not UTF-8 text: {exc.reason}", step=None, field=field) from None


def compile_http_path(source: str, field: str) -> HttpPath:
    """Compile the path of `VERB /path`; raises PathSyntaxError or TemplateSyntaxError."""
    path: list[Part] = []
    query: list[Part] | None = None
    pieces = _pieces(source)
    _check_literal_segments(pieces)
    for offset, text, is_expression in pieces:
        target = path if query is None else query
        if is_expression:
            target.append(_expansion(text, offset, field, in_query=query is not None))
            continue
        if "#" in text:
            raise PathSyntaxError(
                "'#' starts a fragment, which is never sent; write %23 for a '#' in the path",
                offset + text.index("#"),
            )
        if (bad := _BAD_ESCAPE.search(text)) is not None:
            raise PathSyntaxError("'%' must start an escape such as %20", offset + bad.start())
        if query is None and "?" in text:
            before, after = text.split("?", 1)
            path.append(quote(before, safe=_PATH_SAFE))
            query = [quote(after, safe=_QUERY_SAFE)]
        else:
            target.append(quote(text, safe=_QUERY_SAFE if query is not None else _PATH_SAFE))
    return HttpPath(
        source,
        field,
        tuple(p for p in path if p != ""),
        None if query is None else tuple(p for p in query if p != ""),
    )


def _expansion(text: str, offset: int, field: str, *, in_query: bool) -> Expansion:
    inner = text[2:-2]
    # Whitespace control (`{{- x -}}`) means nothing inside a URL.
    inner = inner.removeprefix("-").removesuffix("-")
    template = compile_template("{{" + inner + "}}", field)
    spans = ends_with_path_filter(inner)
    if spans and in_query:
        raise PathSyntaxError(
            "the path filter spans path segments; after '?' a value is one query component",
            offset,
        )
    placement = Placement.QUERY if in_query else Placement.SPAN if spans else Placement.SEGMENT
    return Expansion(template, placement, offset)


def ends_with_path_filter(expression: str) -> bool:
    """Whether an expression's last step is the `path` filter (`.input.file | path`)."""
    ast = ENVIRONMENT.parse(rewrite_leading_dots("{{" + expression + "}}"))
    [output] = ast.body
    assert isinstance(output, nodes.Output)
    node = output.nodes[0]
    return isinstance(node, nodes.Filter) and node.name == PATH_FILTER


def _check_literal_segments(pieces: list[tuple[int, str, bool]]) -> None:
    """Refuse `.` and `..` written as segments: clients resolve them away before sending."""
    skeleton = "".join(
        "\0" * len(text) if is_expression else text for _, text, is_expression in pieces
    )
    offset = 0
    for segment in skeleton.split("?", 1)[0].split("/"):
        if segment in (".", ".."):
            raise PathSyntaxError(
                f"the segment '{segment}' would be resolved away before sending; write the "
                "path without it",
                offset,
            )
        offset += len(segment) + 1


def _pieces(source: str) -> list[tuple[int, str, bool]]:
    """The path text cut into literal text and `{{ … }}` expressions, with their offsets."""
    pieces: list[tuple[int, str, bool]] = []
    pos = 0
    while (start := _next_tag(source, pos)) >= 0:
        if source.startswith(("{%", "{#"), start):
            raise PathSyntaxError(
                "a method path holds only {{ … }} expressions, not {% … %} or {# … #}", start
            )
        end = _expression_end(source, start + 2)
        if end < 0:
            raise PathSyntaxError("'{{' is not closed with '}}'", start)
        pieces.append((pos, source[pos:start], False))
        pieces.append((start, source[start : end + 2], True))
        pos = end + 2
    pieces.append((pos, source[pos:], False))
    return pieces


def _next_tag(source: str, pos: int) -> int:
    found = [i for i in (source.find(tag, pos) for tag in ("{{", "{%", "{#")) if i >= 0]
    return min(found, default=-1)


def _expression_end(source: str, pos: int) -> int:
    """Where the `}}` closing an expression stands, skipping strings and brackets; -1 if none."""
    closers: list[str] = []
    i = pos
    while i < len(source):
        char = source[i]
        if char in "'\"":
            i = _string_end(source, i)
            continue
        if not closers and source.startswith("}}", i):
            return i
        if char in _OPENERS:
            closers.append(_OPENERS[char])
        elif closers and char == closers[-1]:
            closers.pop()
        i += 1
    return -1
