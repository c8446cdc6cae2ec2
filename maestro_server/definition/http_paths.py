"""Reading the path of an HTTP `method` into an HttpPath, reporting problems where they stand."""

from __future__ import annotations

from yaml.nodes import Node

from maestro_server.definition.reader import Reader
from maestro_server.definition.template_rules import check_template, error_at
from maestro_server.templating.path import (
    HttpPath,
    PathSyntaxError,
    Placement,
    compile_http_path,
)
from maestro_server.templating.values import TemplateSyntaxError


def read_http_path(
    reader: Reader, node: Node, path_text: str, *, path: str, field: str, text: str
) -> HttpPath | None:
    """Compile the path of `VERB /path` written at `node`; None after reporting why not.

    `text` is the whole workflow file, to point into the method string.
    """
    value = str(getattr(node, "value", ""))
    base = max(value.find(path_text), 0)
    try:
        compiled = compile_http_path(path_text, field)
    except TemplateSyntaxError as exc:
        where = f" (line {exc.line} of the template)" if exc.line > 1 else ""
        reader.error(node, path, "template-syntax", f"template syntax error{where}: {exc.message}")
        return None
    except PathSyntaxError as exc:
        needle = path_text[exc.offset : exc.offset + 2]
        error_at(
            reader,
            text,
            node,
            base + exc.offset,
            needle,
            path=path,
            code="bad-path",
            message=exc.message,
        )
        return None
    for expansion in compiled.expansions:
        spans = expansion.placement is Placement.SPAN
        check_template(
            reader,
            expansion.template,
            node,
            path,
            text,
            offset=base + expansion.offset,
            spans=spans,
        )
    return compiled
