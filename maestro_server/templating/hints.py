"""What to write instead of a Go or sprig function Maestro's templates do not provide."""

from __future__ import annotations

from maestro_server.templating.goemit import FUNCTIONS

_HINTS = {
    "replace": 'write the jinja2 filter: {{ .s | replace("old", "new") }}',
    "contains": 'write {{ "part" in .s }}',
    "hasPrefix": 'write {{ .s.startswith("prefix") }}',
    "hasSuffix": 'write {{ .s.endswith("suffix") }}',
    "trimPrefix": 'write {{ .s.removeprefix("prefix") }}',
    "trimSuffix": 'write {{ .s.removesuffix("suffix") }}',
    "toString": "write {{ .x | string }}",
    "int": "write {{ .x | int }}",
    "int64": "write {{ .x | int }}",
    "atoi": "write {{ .x | int }}",
    "float64": "write {{ .x | float }}",
    "join": 'write {{ .list | join(",") }}',
    "split": 'write {{ .s.split(",") }}',
    "splitList": 'write {{ .s.split(",") }}',
    "title": "write {{ .s | title }}",
    "now": "write {{ now() }}",
    "uuidv4": "write {{ uuid() }}",
    "list": "write a list: {{ [.a, .b] }}",
    "dict": 'write an object: {{ {"key": .value} }}',
    "ternary": 'write {{ "yes" if .ok else "no" }}',
    "coalesce": "write {{ .a or .b }}",
    "empty": "write {{ not .x }}",
    "required": "not needed: reading a missing value is already an error",
    "html": "write {{ .s | escape }}",
    "js": "write {{ .s | tojson }}",
    "urlquery": "write {{ .s | urlencode }}",
    "slice": "write {{ .list[1:3] }}",
    "call": "templates cannot call functions held in data",
    "toYaml": "write {{ .x | toJson }}",
    "toPrettyJson": "write {{ .x | tojson(2) }}",
    "sha256sum": "hash the value before it reaches the workflow",
}


def function_hint(name: str) -> str:
    """What to write instead of `name`: a jinja2 form, or the Go functions there are."""
    if name in _HINTS:
        return _HINTS[name]
    return (
        f"the Go functions are {', '.join(FUNCTIONS)}; or write a jinja2 filter: "
        f"{{{{ .x | {name}(…) }}}}"
    )
