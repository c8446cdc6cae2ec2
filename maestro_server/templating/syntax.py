"""Rewrites Go-template-style leading-dot paths into jinja2 syntax.

jinja2 rejects `{{ .input.email }}` (a leading dot is a syntax error), so before compiling,
every dot that starts a path is dropped: `{{ .input.email }}` becomes `{{ input.email }}`.
A dot is "leading" when it does not follow an operand (a name, a number, a string literal or a
closing bracket), so `a.b`, `f(x).y` and `'a.b'` are left alone, while `('x' ~ .input.id)`,
`.a and .b` and `[.a, .b]` are rewritten. Only the inside of `{{ … }}` and `{% … %}` is touched;
text, comments and `{% raw %}` blocks are copied as they are.
"""

from __future__ import annotations

import re

_TAG_OPEN = re.compile(r"\{\{|\{%|\{#")
_RAW_BLOCK = re.compile(r"\{%-?\s*raw\s*-?%\}")
_ENDRAW_BLOCK = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][+-]?[0-9]+)?")
# Names that are operators, after which a dot starts a new path.
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else"})
_CLOSERS = {"{{": "}}", "{%": "%}"}


def rewrite_leading_dots(source: str) -> str:
    """Return `source` with every leading-dot path inside a tag rewritten to plain jinja2."""
    out: list[str] = []
    pos = 0
    while (match := _TAG_OPEN.search(source, pos)) is not None:
        start = match.start()
        out.append(source[pos:start])
        opener = match.group()
        if opener == "{#":
            end = source.find("#}", start)
            end = len(source) if end < 0 else end + 2
            out.append(source[start:end])
            pos = end
            continue
        if _RAW_BLOCK.match(source, start):
            endraw = _ENDRAW_BLOCK.search(source, start)
            end = len(source) if endraw is None else endraw.end()
            out.append(source[start:end])
            pos = end
            continue
        body, pos = _rewrite_tag(source, match.end(), _CLOSERS[opener])
        out.append(opener + body)
    out.append(source[pos:])
    return "".join(out)


def _rewrite_tag(source: str, pos: int, closer: str) -> tuple[str, int]:
    """Rewrite one tag body starting at `pos`; return it (with its closer) and the end offset."""
    out: list[str] = []
    after_operand = False
    n = len(source)
    while pos < n:
        if source.startswith(closer, pos) or (
            source[pos] == "-" and source.startswith(closer, pos + 1)
        ):
            end = source.index(closer, pos) + len(closer)
            out.append(source[pos:end])
            return "".join(out), end
        char = source[pos]
        if char in "'\"":
            end = _string_end(source, pos)
            out.append(source[pos:end])
            pos, after_operand = end, True
        elif char.isspace():
            out.append(char)
            pos += 1
        elif (name := _NAME.match(source, pos)) is not None:
            out.append(name.group())
            pos, after_operand = name.end(), name.group() not in _KEYWORDS
        elif (number := _NUMBER.match(source, pos)) is not None:
            out.append(number.group())
            pos, after_operand = number.end(), True
        elif char == ".":
            follows_name = _NAME.match(source, pos + 1) is not None
            if after_operand or not follows_name:
                out.append(char)
            pos += 1
            after_operand = False
        else:
            out.append(char)
            pos += 1
            after_operand = char in ")]}"
    # An unterminated tag: leave the rest to jinja2, which reports it with its line.
    return "".join(out), pos


def _string_end(source: str, pos: int) -> int:
    quote = source[pos]
    i = pos + 1
    while i < len(source):
        if source[i] == "\\":
            i += 2
        elif source[i] == quote:
            return i + 1
        else:
            i += 1
    return len(source)
