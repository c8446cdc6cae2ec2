"""Go actions written out as jinja2: printed pipelines, variables, and if/range/with blocks.

`range` becomes a for-loop over `go_range` (lists, maps in key order, 0…n-1) whose element is
dot inside it; `with` binds dot to its value when that is not empty. Each Go variable gets a
name of its own, so a declaration inside a block ends with the block as in Go.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maestro_server.templating.goemit import Scope, emit
from maestro_server.templating.goparse import GoSyntaxError, Parser, Pipeline, Token


@dataclass
class _Block:
    kind: str
    offset: int
    outer: Scope
    loops: int
    has_else: bool = False
    else_scope: Scope | None = None
    """What the else branch sees: the outer dot, and variables the opener declared."""


@dataclass
class Translator:
    """The state of one template's translation: output so far, open blocks, scope."""

    source: str
    single: bool
    out: list[str] = field(default_factory=list)
    blocks: list[_Block] = field(default_factory=list)
    scope: Scope = field(default_factory=Scope)
    loops: int = 0
    """How many jinja2 for-loops enclose the current point (their `set`s do not leak out)."""
    declared_in: dict[str, int] = field(default_factory=dict)
    counter: int = 0

    def fresh(self, stem: str) -> str:
        """A jinja2 name no other part of the template uses."""
        self.counter += 1
        return f"go_{stem}{self.counter}"


def expression_action(translator: Translator, pipeline: Pipeline, trims: tuple[str, str]) -> str:
    """`{{ pipeline }}`: printed as Go prints (alone: its value), or a `$x :=` / `$x =`."""
    expression = emit(pipeline.expression, translator.scope)
    if pipeline.variables:
        (name,) = pipeline.variables
        target = _bind(
            translator, name, assigns=pipeline.assigns, offset=pipeline.expression.offset
        )
        return f"{{%{trims[0]} set {target} = {expression} {trims[1]}%}}"
    if translator.single:
        return f"{{{{{trims[0]} {expression} {trims[1]}}}}}"
    return f"{{{{{trims[0]} ({expression}) | go_text {trims[1]}}}}}"


def _bind(translator: Translator, name: str, *, assigns: bool, offset: int) -> str:
    """The jinja2 name a `$name` declaration or assignment writes."""
    if not assigns:
        target = translator.fresh(f"v_{name}_")
        translator.scope.variables[name] = target
        translator.declared_in[target] = translator.loops
        return target
    if name not in translator.scope.variables:
        raise GoSyntaxError(f"undefined variable: ${name}", offset)
    target = translator.scope.variables[name]
    if translator.declared_in.get(target, 0) != translator.loops:
        raise GoSyntaxError(
            f"assigning ${name} inside a {{{{ range }}}} that it was declared outside of is not "
            "supported: compute the value before the range",
            offset,
        )
    return target


def control_action(
    translator: Translator,
    keyword: str,
    tokens: list[Token],
    *,
    end: int,
    trims: tuple[str, str],
    offset: int,
) -> None:
    """`{{ if|range|with … }}`, `{{ else … }}` or `{{ end }}`, as jinja2 statements."""
    left, right = trims
    if keyword == "end":
        if tokens:
            raise GoSyntaxError("{{ end }} takes nothing after it", tokens[0].offset)
        if not translator.blocks:
            raise GoSyntaxError("{{ end }} without {{ if }}, {{ range }} or {{ with }}", offset)
        block = translator.blocks.pop()
        translator.scope, translator.loops = block.outer, block.loops
        closer = {"if": "endif", "with": "endif", "range": "endfor"}[block.kind]
        translator.out.append(f"{{%{left} {closer} {right}%}}")
        return
    if keyword == "else":
        _else(translator, tokens, end, trims, offset)
        return
    if not tokens:
        raise GoSyntaxError(f"missing value for {keyword}", end)
    parser = Parser(tokens, end)
    pipeline = parser.pipeline(declarations=2 if keyword == "range" else 1)
    parser.expect_end()
    expression = emit(pipeline.expression, translator.scope)
    outer = Scope(translator.scope.dot, dict(translator.scope.variables))
    translator.blocks.append(_Block(keyword, offset, outer, translator.loops))
    if keyword == "range":
        key, dot = translator.fresh("key"), translator.fresh("dot")
        count = len(pipeline.variables)
        translator.out.append(
            f"{{%{left} for {key}, {dot} in ({expression}) | go_range({max(count, 1)}) {right}%}}"
        )
        translator.loops += 1
        translator.scope = Scope(dot, dict(translator.scope.variables))
        bound = {1: (dot,), 2: (key, dot)}.get(count, ())
        translator.scope.variables.update(zip(pipeline.variables, bound, strict=True))
        return
    test = expression
    if keyword == "with" or pipeline.variables:
        test = translator.fresh("dot" if keyword == "with" else "if")
        translator.out.append(f"{{%{left} set {test} = {expression} %}}")
        left = ""
        for name in pipeline.variables:
            translator.scope.variables[name] = test
            translator.declared_in[test] = translator.loops
    translator.out.append(f"{{%{left} if {test} {right}%}}")
    translator.blocks[-1].else_scope = Scope(outer.dot, dict(translator.scope.variables))
    if keyword == "with":
        translator.scope = Scope(test, dict(translator.scope.variables))


def _else(
    translator: Translator, tokens: list[Token], end: int, trims: tuple[str, str], offset: int
) -> None:
    left, right = trims
    block = translator.blocks[-1] if translator.blocks else None
    if block is None or block.has_else:
        raise GoSyntaxError("{{ else }} without {{ if }}, {{ range }} or {{ with }}", offset)
    if tokens and tokens[0].kind == "ident" and tokens[0].text == "with":
        raise GoSyntaxError(
            "{{ else with }} is not supported: write {{ else }}{{ with … }}…{{ end }}{{ end }}",
            tokens[0].offset,
        )
    seen = block.else_scope or block.outer
    translator.scope = Scope(seen.dot, dict(seen.variables))
    translator.loops = block.loops
    if tokens and tokens[0].kind == "ident" and tokens[0].text == "if" and block.kind == "if":
        parser = Parser(tokens[1:], end)
        pipeline = parser.pipeline(declarations=0)
        parser.expect_end()
        expression = emit(pipeline.expression, translator.scope)
        translator.out.append(f"{{%{left} elif {expression} {right}%}}")
        return
    if tokens:
        raise GoSyntaxError("{{ else }} takes nothing after it but if", tokens[0].offset)
    block.has_else = True
    translator.out.append(f"{{%{left} else {right}%}}")
