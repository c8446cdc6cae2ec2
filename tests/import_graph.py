"""A package's import graph read from its source, and the layering rules checked against it.

Test code for tests/test_architecture.py: every `import` and `from … import` of every module,
nested ones included, with relative imports resolved to the modules they name.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT_LAYER = "__init__"
"""The layer of the package's own `__init__`: every layer may import it."""


@dataclass(frozen=True, slots=True)
class Import:
    """One module of the package importing one module (of the package or not)."""

    importer: str
    imported: str
    line: int


@dataclass(frozen=True, slots=True)
class Rules:
    """What each layer of a package may import; names are relative to the package.

    A layer is a first-level subpackage or module (`engine`, `errors`). `layers` maps each to
    what it may import besides itself: whole layers (`store`) or single modules (`store.base`).
    Modules under `generated` may be imported only by `generated_importers`.
    """

    package: str
    layers: Mapping[str, Collection[str]]
    generated: str = ""
    generated_importers: Collection[str] = ()


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name → file of every module of `package`, found under `root`."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def read_imports(root: Path, package: str, skip: str = "") -> list[Import]:
    """Every import made by the modules of `package` (but those under `package.skip`)."""
    modules = module_names(root, package)
    skipped = f"{package}.{skip}" if skip else None
    found = []
    for name, path in modules.items():
        if skipped and (name == skipped or name.startswith(skipped + ".")):
            continue
        is_package = path.name == "__init__.py"
        for imported, line in _imports(path, name, is_package, modules):
            found.append(Import(name, imported, line))
    return found


def _imports(
    path: Path, module: str, is_package: bool, modules: Collection[str]
) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}" if base else alias.name
                yield (submodule if submodule in modules else base), node.lineno


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from` import reads from, resolving leading dots."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(parts) - 1:
        raise ValueError(f"{module}: relative import beyond the top-level package")
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def layer_of(module: str, package: str) -> str | None:
    """The layer of a module of `package` (`engine` for `package.engine.runner`), else None."""
    parts = module.split(".")
    if parts[0] != package:
        return None
    return parts[1] if len(parts) > 1 else ROOT_LAYER


def _relative(module: str, package: str) -> str:
    return module.removeprefix(package).removeprefix(".")


def _allowed(importer: str, imported: str, rules: Rules) -> bool:
    own, target = _relative(importer, rules.package), _relative(imported, rules.package)
    if rules.generated and _within(target, rules.generated):
        return own in rules.generated_importers
    layer, other = layer_of(importer, rules.package), layer_of(imported, rules.package)
    if other in (layer, ROOT_LAYER):
        return True
    allowed = rules.layers.get(layer or "", ())
    return any(_within(target, entry) for entry in allowed)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def uncovered_layers(root: Path, rules: Rules) -> list[str]:
    """Layers of the package that no rule names."""
    layers = {layer_of(name, rules.package) or "" for name in module_names(root, rules.package)}
    return sorted(layers - set(rules.layers) - {rules.generated, ""})


def forbidden_imports(imports: Collection[Import], rules: Rules) -> list[str]:
    """`importer:line imports module` for every import of the package its rules forbid."""
    return [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in imports
        if layer_of(i.imported, rules.package) is not None
        and not _allowed(i.importer, i.imported, rules)
    ]


def layer_cycles(imports: Collection[Import], rules: Rules) -> list[str]:
    """Each cycle among the layers, as `a → b → a` with the imports that close it."""
    edges: dict[str, dict[str, Import]] = {}
    for i in imports:
        source, target = layer_of(i.importer, rules.package), layer_of(i.imported, rules.package)
        if source and target and target not in (source, rules.generated):
            edges.setdefault(source, {}).setdefault(target, i)
    cycles = []
    for component in _strongly_connected(edges):
        path = _cycle_through(min(component), component, edges)
        steps = [edges[a][b] for a, b in itertools.pairwise(path)]
        how = "; ".join(f"{s.importer}:{s.line} imports {s.imported}" for s in steps)
        cycles.append(f"{' → '.join(path)} ({how})")
    return cycles


def _strongly_connected(edges: Mapping[str, Mapping[str, Import]]) -> list[set[str]]:
    """Tarjan's components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def _cycle_through(
    start: str, component: set[str], edges: Mapping[str, Mapping[str, Import]]
) -> list[str]:
    """A shortest path start → … → start inside one component."""
    paths = [[start]]
    while paths:
        path = paths.pop(0)
        for target in sorted(edges.get(path[-1], {})):
            if target == start:
                return [*path, start]
            if target in component and target not in path:
                paths.append([*path, target])
    raise AssertionError(f"no cycle through {start}")
