"""Where a place inside a template is in the workflow file: its line and column.

A template is a YAML string whose text may differ from the file's (quotes, escapes, block
indentation), so an offset in the string is found in the file by its surrounding text.
"""

from __future__ import annotations

from yaml.nodes import Node

from maestro_server.diagnostics import SourceLocation

_CONTEXT = 24
"""How much text after the offset identifies the place in the file."""


def template_position(
    file: str, text: str, node: Node, template: str, offset: int
) -> SourceLocation:
    """The file position of `template[offset]`, for a template written in `node`.

    Falls back to the node's own position when the text cannot be matched (escapes).
    """
    start, end = node.start_mark.index, node.end_mark.index
    raw = text[start:end]
    line_end = template.find("\n", offset)
    needle = template[offset : line_end if line_end >= 0 else len(template)][:_CONTEXT]
    found, shortest = -1, min(3, len(needle))
    while len(needle) >= shortest and needle:
        # The same text may occur earlier in the template: take the matching occurrence.
        occurrence = template.count(needle, 0, offset)
        found = _nth(raw, needle, occurrence)
        if found >= 0:
            break
        needle = needle[:-1]
    if found < 0:
        return SourceLocation(file, node.start_mark.line + 1, node.start_mark.column + 1)
    index = start + found
    line_start = text.rfind("\n", 0, index) + 1
    return SourceLocation(file, text.count("\n", 0, index) + 1, index - line_start + 1)


def _nth(haystack: str, needle: str, n: int) -> int:
    position = -1
    for _ in range(n + 1):
        position = haystack.find(needle, position + 1)
        if position < 0:
            return -1
    return position
