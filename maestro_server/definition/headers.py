"""Service headers and gRPC metadata: names checked at validation, values before each call.

A value holding CR or LF would end its header and start another (a forged header, or a
second request on a kept-alive connection); NUL cuts it short. Literal values are checked
when the workflow loads, templated ones after rendering, before anything is sent.
Names: HTTP header names are tokens (RFC 9110), and those that frame the request are
Maestro's to set; gRPC metadata keys follow gRPC's rules (lower-case letters, digits, `_`, `-`
and `.`; `grpc-` is reserved; `-bin` keys carry bytes, which templates do not make).
"""

from __future__ import annotations

import re

from yaml.nodes import MappingNode, Node, ScalarNode

from maestro_server.definition.loader import STR_TAG
from maestro_server.definition.reader import Reader
from maestro_server.errors import TemplateError
from maestro_server.model.workflow import ServiceType
from maestro_server.templating.values import is_template

_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_GRPC_KEY = re.compile(r"[0-9a-z_.-]+")
_FRAMING_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
    }
)
_BREAKING = re.compile(r"[\r\n\0]")


def name_problem(name: str, kind: ServiceType) -> str | None:
    """Why a header (HTTP) or metadata key (gRPC) name is refused, or None."""
    if kind is ServiceType.GRPC:
        key = name.lower()
        if not _GRPC_KEY.fullmatch(key):
            return (
                f"metadata key '{name}' may hold only letters, digits, '_', '-' and '.' "
                "(gRPC's rule)"
            )
        if key.startswith("grpc-"):
            return f"metadata key '{name}': keys starting with 'grpc-' are reserved for gRPC"
        if key.endswith("-bin"):
            return f"metadata key '{name}': '-bin' keys carry bytes, which headers cannot give"
        return None
    if not _HTTP_TOKEN.fullmatch(name):
        return f"header name '{name}' is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
    if name.lower() in _FRAMING_HEADERS:
        return f"header '{name}' frames the request; Maestro sets it, a workflow may not"
    return None


def value_problem(value: str) -> str | None:
    """Why a header value may not be sent (CR, LF or NUL in it), or None."""
    found = _BREAKING.search(value)
    if found is None:
        return None
    char = {"\r": "CR", "\n": "LF", "\0": "NUL"}[found.group()]
    return f"holds a {char} character, which would end the header and start another"


def checked_value(name: str, value: str) -> str:
    """The value of header `name`, or TemplateError when it may not be sent."""
    problem = value_problem(value)
    if problem is not None:
        message = f"the value of header '{name}' {problem}; nothing was sent"
        raise TemplateError(message, step=None, field=f"headers.{name}")
    return value


def check_headers(reader: Reader, node: Node, path: str, kind: ServiceType) -> None:
    """Report refused names and literal values of a service's `headers` mapping."""
    if not isinstance(node, MappingNode):
        return  # the parser reports the wrong type
    for key, value in node.value:
        if not isinstance(key, ScalarNode) or key.tag != STR_TAG:
            continue
        problem = name_problem(key.value, kind)
        if problem is not None:
            reader.error(key, f"{path}.{key.value}", "bad-header", problem)
        literal = isinstance(value, ScalarNode) and value.tag == STR_TAG
        if literal and not is_template(value.value):
            problem = value_problem(value.value)
            if problem is not None:
                message = f"the value of header '{key.value}' {problem}"
                reader.error(value, f"{path}.{key.value}", "bad-header", message)
