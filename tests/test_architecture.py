"""Layers import only downwards: YAML → model → engine → transports → store/events → API.

A module of a layer may import the layers listed as allowed for it, and nothing above. The
generated `_proto` code is reserved for the API and CLI layers.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "maestro_server"

# Package (first component under maestro_server) → the maestro_server packages it may import.
BASE = {"errors", "model", "templating", "secrets", "metrics", "tracing", "durations"}
ALLOWED: dict[str, set[str]] = {
    "errors": {"model"},
    "secrets": set(),
    "durations": set(),
    "metrics": set(),
    "tracing": set(),
    "model": {"model", "templating", "errors"},
    "templating": {"templating", "errors"},
    "definition": BASE | {"definition"},
    "resilience": BASE | {"resilience"},
    "transports": BASE | {"transports", "resilience"},
    "store": BASE | {"store"},
    "engine": BASE | {"engine", "resilience", "transports", "store", "definition"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "maestro_server" or len(parts) < 2:
        return None
    return parts[1].removesuffix(".py")


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "_proto" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_module_imports_only_lower_layers(path: Path) -> None:
    """No module imports a layer above its own."""
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    allowed = ALLOWED.get(own)
    if allowed is None:
        return  # composition layers (cli, api, app) may import everything
    for imported in _imports(path):
        layer = _layer(imported)
        if layer is not None:
            assert layer in allowed, f"{path.name} ({own}) imports {imported}"


def test_client_sdk_does_not_depend_on_the_server() -> None:
    """maestro_client ships alone: it never imports maestro_server."""
    for path in (ROOT / "maestro_client").rglob("*.py"):
        assert not any(m.startswith("maestro_server") for m in _imports(path)), path
