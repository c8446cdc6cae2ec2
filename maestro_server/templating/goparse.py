"""Go text/template pipelines, lexed and parsed (goemit.py writes them out as jinja2).

A pipeline is what sits inside `{{ … }}` (after `if`, `range` and `with` too): commands joined
by `|`, each a function with space-separated arguments or a single operand. The piped value is
the last argument of the next command. `.a.b` reads from dot, `$` is the root, `$x` a variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+
        |(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?))
    |(?P<dot>\.)
    |(?P<var>\$[A-Za-z0-9_]*)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*")
    |(?P<raw>`[^`]*`)
    |(?P<char>'(?:[^'\\\n]|\\.)*')
    |(?P<declare>:=)|(?P<assign>=)|(?P<pipe>\|)|(?P<lparen>\()|(?P<rparen>\))|(?P<comma>,)
    """,
    re.X,
)


class GoSyntaxError(Exception):
    """A pipeline that is not Go, at `offset` in the text parsed."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class UnknownFunctionError(GoSyntaxError):
    """A well-formed Go call of a function Maestro does not provide."""

    def __init__(self, name: str, offset: int) -> None:
        super().__init__(f"function '{name}' is not supported", offset)
        self.name = name


@dataclass(frozen=True, slots=True)
class Token:
    """One lexeme: its kind (a group name of _TOKEN), text and offset."""

    kind: str
    text: str
    offset: int
    spaced: bool = False
    """Whether blanks came before it."""


@dataclass(frozen=True, slots=True)
class Node:
    """A parsed operand or call; `emit` writes it as a jinja2 expression."""

    kind: str
    """literal, dot, field, var or call."""
    offset: int
    value: object = None
    """literal: its value; var: its name; call: the function's name."""
    names: tuple[str, ...] = ()
    """field: the keys read, in order."""
    receiver: Node | None = None
    """field: what the keys are read from (None: dot)."""
    args: tuple[Node, ...] = ()


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A parsed pipeline: the variables it declares or assigns, and its expression."""

    variables: tuple[str, ...]
    assigns: bool
    expression: Node


def tokenize(text: str, base: int = 0) -> list[Token]:
    """The tokens of a pipeline's text (offsets from `base`)."""
    tokens: list[Token] = []
    position, spaced = 0, False
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise GoSyntaxError(f"unexpected {text[position]!r}", base + position)
        kind = match.lastgroup or ""
        if kind == "space":
            spaced = True
        else:
            tokens.append(Token(kind, match.group(), base + position, spaced))
            spaced = False
        position = match.end()
    return tokens


class Parser:
    """Recursive descent over one pipeline's tokens."""

    def __init__(self, tokens: list[Token], end: int) -> None:
        self.tokens = tokens
        self.position = 0
        self.end = end
        self.functions: list[tuple[str, int]] = []
        """Every function called, with its offset (checked by the caller)."""

    def peek(self, ahead: int = 0) -> Token | None:
        """The token `ahead` past the current one, if any."""
        index = self.position + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def pipeline(self, *, declarations: int = 1, closer: str | None = None) -> Pipeline:
        """`[$x[, $y] := | =] command [| command]…`, up to `closer` or the end."""
        variables, assigns = self._declaration(declarations)
        commands = [self._command(closer)]
        while (token := self.peek()) is not None and token.kind == "pipe":
            self.position += 1
            commands.append(self._command(closer))
        expression = commands[0]
        for command in commands[1:]:
            if command.kind != "call":
                raise GoSyntaxError("only a function can follow '|'", command.offset)
            expression = Node(
                "call", command.offset, command.value, args=(*command.args, expression)
            )
        token = self.peek()
        if token is not None and token.kind != closer:
            raise GoSyntaxError(f"unexpected {token.text!r}", token.offset)
        return Pipeline(variables, assigns, expression)

    def _declaration(self, allowed: int) -> tuple[tuple[str, ...], bool]:
        kinds = [t.kind for t in self.tokens[self.position : self.position + 4]]
        if kinds[:2] in (["var", "declare"], ["var", "assign"]):
            count = 1
        elif kinds[:4] in (["var", "comma", "var", "declare"], ["var", "comma", "var", "assign"]):
            count = 2
        else:
            return (), False
        if count > allowed:
            raise GoSyntaxError("too many declarations", self.tokens[self.position].offset)
        names = tuple(self.tokens[self.position + 2 * i].text[1:] for i in range(count))
        operator = self.tokens[self.position + 2 * count - 1]
        self.position += 2 * count
        if "" in names:
            raise GoSyntaxError("cannot declare or assign $", operator.offset)
        return names, operator.kind == "assign"

    def _command(self, closer: str | None) -> Node:
        first = self._operand()
        args: list[Node] = []
        while (token := self.peek()) is not None and token.kind not in ("pipe", closer):
            if not token.spaced:
                raise GoSyntaxError(f"unexpected {token.text!r} (missing space?)", token.offset)
            argument = self._operand()
            if argument.kind == "call" and not argument.args and argument.value != "paren":
                raise GoSyntaxError(
                    f"to pass the result of {argument.value} as an argument, write it in "
                    f"parentheses: ({argument.value} …)",
                    argument.offset,
                )
            args.append(argument)
        if first.kind == "call" and first.value != "paren":
            return Node("call", first.offset, first.value, args=tuple(args))
        if args:
            raise GoSyntaxError("only a function takes arguments; this is a value", args[0].offset)
        return first.args[0] if first.kind == "call" else first

    def _operand(self) -> Node:
        token = self.peek()
        if token is None:
            raise GoSyntaxError("missing value", self.end)
        self.position += 1
        kind = token.kind
        if kind == "ident":
            if token.text in ("true", "false"):
                return Node("literal", token.offset, token.text == "true")
            if token.text == "nil":
                return Node("literal", token.offset, None)
            self.functions.append((token.text, token.offset))
            return Node("call", token.offset, token.text)
        node: Node
        if kind == "number":
            node = Node("literal", token.offset, _number(token))
        elif kind in ("string", "raw"):
            node = Node("literal", token.offset, _string(token))
        elif kind == "char":
            raise GoSyntaxError(
                f'{token.text} is a Go character (a number), not text: write "{token.text[1:-1]}"',
                token.offset,
            )
        elif kind == "dot":
            node = Node("dot", token.offset)
        elif kind == "field":
            node = Node("field", token.offset, names=(token.text[1:],))
        elif kind == "var":
            node = Node("var", token.offset, token.text[1:])
        elif kind == "lparen":
            inner = self.pipeline(declarations=0, closer="rparen")
            self.position += 1  # the closer, checked by pipeline()
            node = Node("call", token.offset, "paren", args=(inner.expression,))
        else:
            raise GoSyntaxError(f"unexpected {token.text!r}", token.offset)
        return self._fields(node)

    def _fields(self, node: Node) -> Node:
        names: list[str] = []
        while (token := self.peek()) is not None and token.kind == "field" and not token.spaced:
            names.append(token.text[1:])
            self.position += 1
        if not names:
            return node
        if node.kind == "literal":
            raise GoSyntaxError("a literal has no fields", node.offset)
        if node.kind == "field":
            return Node("field", node.offset, names=(*node.names, *names))
        if node.kind == "call" and node.value != "paren":
            raise GoSyntaxError(
                f"write ({node.value} …).{names[0]} to read a field of a function's result",
                node.offset,
            )
        receiver = node.args[0] if node.kind == "call" else node
        return Node("field", node.offset, names=tuple(names), receiver=receiver)

    def expect_end(self) -> None:
        """Fail unless every token was read."""
        token = self.peek()
        if token is not None:
            raise GoSyntaxError(f"unexpected {token.text!r}", token.offset)


def _number(token: Token) -> int | float:
    text = token.text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xXoObB].*", text):
            sign = -1 if text.startswith("-") else 1
            return sign * int(text.lstrip("+-"), 0)
        if re.search(r"[.eE]", text):
            return float(text)
        return int(text)
    except ValueError:
        raise GoSyntaxError(f"bad number syntax: {token.text}", token.offset) from None


def _string(token: Token) -> str:
    if token.kind == "raw":
        return token.text[1:-1]
    body = token.text[1:-1]
    try:
        return _ESCAPE.sub(_unescape, body)
    except ValueError:
        raise GoSyntaxError(f"bad escape in {token.text}", token.offset) from None


_ESCAPE = re.compile(r"\\(U[0-9a-fA-F]{8}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[0-7]{3}|.)", re.S)


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    if code in simple:
        return simple[code]
    if code in ("\\", '"', "'"):
        return code
    if len(code) > 1 and code[0] in "uUx":
        return chr(int(code[1:], 16))
    if len(code) == 3:
        return chr(int(code, 8))
    raise ValueError(code)
