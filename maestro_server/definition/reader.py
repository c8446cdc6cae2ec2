"""Typed reading of YAML nodes, collecting a diagnostic for every problem instead of stopping.

Each `Reader` method returns the value, or None after recording why it could not.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from maestro_server.definition.loader import (
    BOOL_TAG,
    FLOAT_TAG,
    INT_TAG,
    MERGE_TAG,
    NULL_TAG,
    STR_TAG,
    location,
)
from maestro_server.diagnostics import Diagnostic, SourceLocation
from maestro_server.durations import parse_duration

IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}")
"""What names of workflows and services and ids of steps must match."""

_KIND: dict[type[Node], str] = {MappingNode: "a mapping", SequenceNode: "a list"}

_SCALAR_TAGS = (STR_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG)

Pairs = dict[str, tuple[Node, Node]]
"""A mapping's entries: key text → (key node, value node), in file order."""


def kind(node: Node) -> str:
    """What a node is, for messages: 'a mapping', 'a list', 'a number' and so on."""
    if isinstance(node, ScalarNode):
        return {
            STR_TAG: "a string",
            INT_TAG: "a number",
            FLOAT_TAG: "a number",
            BOOL_TAG: "a boolean",
            NULL_TAG: "null",
        }.get(node.tag, f"a value tagged {node.tag}")
    return _KIND.get(type(node), "a node")


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Reader:
    """Reads nodes of one file, recording diagnostics in `diagnostics`."""

    def __init__(self, path: str, text: str = "") -> None:
        self.path = path
        self.text = text
        """The file's text, to place problems inside templates."""
        self.diagnostics: list[Diagnostic] = []

    def location(self, node: Node) -> SourceLocation:
        """The node's position in the file."""
        return location(self.path, node)

    def error(self, node: Node, path: str, code: str, message: str) -> None:
        """Record a problem at `node`."""
        self.diagnostics.append(Diagnostic(self.location(node), message, code, path))

    def error_at(self, location: SourceLocation, path: str, code: str, message: str) -> None:
        """Record a problem at a position inside a node (a place in a template)."""
        self.diagnostics.append(Diagnostic(location, message, code, path))

    def mapping(
        self,
        node: Node,
        path: str,
        what: str,
        allowed: Collection[str] | None = None,
        *,
        extensions: bool = False,
    ) -> Pairs | None:
        """A mapping with string keys, merge keys applied, duplicate and unknown keys reported.

        With `extensions`, keys starting with `x-` are accepted and dropped: a place for YAML
        anchors shared by the rest of the file, as in Docker Compose files.
        """
        if not isinstance(node, MappingNode):
            self.error(node, path, "wrong-type", f"{what} must be a mapping, not {kind(node)}")
            return None
        pairs: Pairs = {}
        merged: Pairs = {}
        for key, value in node.value:
            if key.tag == MERGE_TAG:
                for source in value.value if isinstance(value, SequenceNode) else [value]:
                    more = self.mapping(source, path, "a merged value (<<)")
                    for name, pair in (more or {}).items():
                        merged.setdefault(name, pair)
                continue
            if not isinstance(key, ScalarNode) or key.tag not in (STR_TAG, INT_TAG, FLOAT_TAG):
                self.error(key, path, "wrong-type", f"keys of {what} must be strings")
                continue
            if key.value in pairs:
                first = self.location(pairs[key.value][0])
                message = f"duplicate key '{key.value}' (first defined at line {first.line})"
                self.error(key, _join(path, key.value), "duplicate-key", message)
                continue
            pairs[key.value] = (key, value)
        for name, pair in merged.items():
            pairs.setdefault(name, pair)
        if extensions:
            pairs = {name: pair for name, pair in pairs.items() if not name.startswith("x-")}
        if allowed is not None:
            for name, (key, _) in pairs.items():
                if name not in allowed:
                    message = f"unknown key '{name}' in {what}{did_you_mean(name, allowed)}"
                    self.error(key, _join(path, name), "unknown-key", message)
            pairs = {name: pair for name, pair in pairs.items() if name in allowed}
        return pairs

    def get(self, pairs: Pairs, key: str, read: Callable[[Node, str, str], Any], path: str) -> Any:
        """Read `key` of `pairs` with `read`, or None when the key is absent."""
        if key not in pairs:
            return None
        return read(pairs[key][1], path, f"'{key}'")

    def require(self, pairs: Pairs, node: Node, path: str, what: str, *keys: str) -> bool:
        """Report each of `keys` missing from `pairs`; True when all are present."""
        missing = [key for key in keys if key not in pairs]
        for key in missing:
            self.error(node, path, "missing-key", f"{what} needs '{key}'")
        return not missing

    def sequence(self, node: Node, path: str, what: str) -> list[Node] | None:
        """The items of a list."""
        if not isinstance(node, SequenceNode):
            self.error(node, path, "wrong-type", f"{what} must be a list, not {kind(node)}")
            return None
        return list(node.value)

    def string(self, node: Node, path: str, what: str) -> str | None:
        """A string; numbers are taken as written (`version: 1.10` is "1.10", not 1.1)."""
        if not isinstance(node, ScalarNode) or node.tag not in (STR_TAG, INT_TAG, FLOAT_TAG):
            self.error(node, path, "wrong-type", f"{what} must be a string, not {kind(node)}")
            return None
        return str(node.value)

    def boolean(self, node: Node, path: str, what: str) -> bool | None:
        """True or false."""
        if not isinstance(node, ScalarNode) or node.tag != BOOL_TAG:
            self.error(node, path, "wrong-type", f"{what} must be true or false, not {kind(node)}")
            return None
        return bool(node.value.lower() == "true")

    def integer(self, node: Node, path: str, what: str, low: int, high: int) -> int | None:
        """A whole number in [low, high]."""
        if not isinstance(node, ScalarNode) or node.tag != INT_TAG:
            self.error(node, path, "wrong-type", f"{what} must be a whole number, not {kind(node)}")
            return None
        value = int(scalar_value(node))
        if not low <= value <= high:
            self.error(
                node, path, "out-of-range", f"{what} must be from {low} to {high}, not {value}"
            )
            return None
        return value

    def number(self, node: Node, path: str, what: str, low: float, high: float) -> float | None:
        """A number in [low, high]."""
        if not isinstance(node, ScalarNode) or node.tag not in (INT_TAG, FLOAT_TAG):
            self.error(node, path, "wrong-type", f"{what} must be a number, not {kind(node)}")
            return None
        value = float(scalar_value(node))
        if not low <= value <= high:
            self.error(
                node,
                path,
                "out-of-range",
                f"{what} must be from {low:g} to {high:g}, not {value:g}",
            )
            return None
        return value

    def duration(self, node: Node, path: str, what: str) -> timedelta | None:
        """A positive duration such as `250ms`, `5s`, `1m`, `1m30s` or `1d` (see durations.py)."""
        text = self.string(node, path, what)
        if text is None:
            return None
        try:
            value = parse_duration(text)
        except ValueError:
            hint = " (add a unit: ms, s, m or h)" if re.fullmatch(r"[0-9.]+", text) else ""
            message = f"{what} must be a duration such as 250ms, 5s or 1m, not '{text}'{hint}"
            self.error(node, path, "bad-duration", message)
            return None
        except OverflowError:
            self.error(node, path, "bad-duration", f"{what} is too long: '{text}'")
            return None
        if value <= timedelta():
            self.error(node, path, "bad-duration", f"{what} must be longer than zero")
            return None
        return value

    def string_list(self, node: Node, path: str, what: str) -> list[tuple[str, Node]] | None:
        """A list of strings, each with its node."""
        items = self.sequence(node, path, what)
        if items is None:
            return None
        result = []
        for index, item in enumerate(items):
            text = self.string(item, f"{path}[{index}]", f"each item of {what}")
            if text is not None:
                result.append((text, item))
        return result

    def data(self, node: Node, path: str) -> Any:
        """Plain JSON-like data (no templates); records a problem and gives None on a bad value."""
        if isinstance(node, MappingNode):
            pairs = self.mapping(node, path, "an object") or {}
            return {name: self.data(value, _join(path, name)) for name, (_, value) in pairs.items()}
        if isinstance(node, SequenceNode):
            return [self.data(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        if not isinstance(node, ScalarNode) or node.tag not in _SCALAR_TAGS:
            self.error(node, path, "unsupported-tag", f"unsupported YAML tag {node.tag}")
            return None
        value = scalar_value(node)
        if isinstance(value, float) and not math.isfinite(value):
            self.error(node, path, "bad-value", f"{node.value} is not a JSON number")
            return None
        return value


def scalar_value(node: ScalarNode) -> Any:
    """The value of a scalar under YAML 1.2's core schema."""
    text: str = node.value
    if node.tag == INT_TAG:
        if text.startswith("0x"):
            return int(text, 16)
        if text.startswith("0o"):
            return int(text[2:], 8)
        return int(text)
    if node.tag == FLOAT_TAG:
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        return math.nan if lowered == ".nan" else float(text)
    if node.tag == BOOL_TAG:
        return text.lower() == "true"
    if node.tag == NULL_TAG:
        return None
    return text


def find_node(node: Node, keys: list[Any]) -> Node:
    """The node at a JSON path inside a node tree, or the deepest one found on the way."""
    for key in keys:
        if isinstance(node, MappingNode):
            matches = [v for k, v in node.value if isinstance(k, ScalarNode) and k.value == key]
            if not matches:
                return node
            node = matches[0]
        elif isinstance(node, SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
