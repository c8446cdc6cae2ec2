"""Templates: Go-style dot paths rendered by a sandboxed jinja2 environment.

`compile_template` turns one string into a `Template`; `Literal`, `MappingValue` and
`SequenceValue` assemble whole input trees. Everything compiles once, when the workflow loads.
"""

from maestro_server.templating.values import (
    CompiledValue,
    Literal,
    MappingValue,
    Reference,
    SequenceValue,
    Template,
    TemplateSyntaxError,
    compile_template,
    is_template,
)

__all__ = [
    "CompiledValue",
    "Literal",
    "MappingValue",
    "Reference",
    "SequenceValue",
    "Template",
    "TemplateSyntaxError",
    "compile_template",
    "is_template",
]
