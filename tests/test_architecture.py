"""The layout guarded: layers import only downwards, and generated code stays in the API.

Layers, from the bottom: diagnostics and the leaf utilities → errors → templating → model →
definition, resilience, transports, store → engine → api → cli; `schemas` (descriptor pools from
descriptor sets and .proto files, no network) sits below definition and transports, which both
read services' schemas: validation checks calls against the pools the transports call through. Each layer may import what its
rule lists and nothing else; no two layers import each other, even through others (no cycles);
the engine sees the stores and transports only through their Protocol modules; the generated
`_proto` code is imported only by the API modules that convert messages and serve them.
"""

import sys
from pathlib import Path

import pytest

from tests.import_graph import (
    Rules,
    forbidden_imports,
    layer_cycles,
    layer_of,
    module_names,
    read_imports,
    uncovered_layers,
)

ROOT = Path(__file__).resolve().parents[1]

LEAVES = {
    "diagnostics",
    "durations",
    "heap",
    "json_numbers",
    "logs",
    "metrics",
    "secret_values",
    "tracing",
}
"""Modules that import nothing of Maestro's: any layer may use them."""
BASE = LEAVES | {"errors", "templating", "model"}
LIBRARY: dict[str, set[str]] = {
    "__init__": set(),
    **{leaf: set() for leaf in LEAVES},
    "errors": {"diagnostics"},
    "templating": {"errors"},
    "model": {"diagnostics", "errors", "templating"},
    "schemas": set(),
    "definition": BASE | {"schemas"},
    "resilience": BASE,
    "transports": BASE | {"resilience", "schemas"},
    "store": BASE,
    # The engine reaches stores and transports through their Protocols only; the concrete ones
    # are chosen by the composition layers (api, cli).
    "engine": BASE | {"definition", "resilience", "store.base", "transports.base"},
}
LAYERS: dict[str, set[str]] = {
    **LIBRARY,
    # Composition layers: each may import everything below it; nothing imports them.
    # The console's static files, served by the API's HTTP face.
    "console": set(),
    "api": set(LIBRARY) | {"console"},
    "cli": set(LIBRARY) | {"api"},
    "__main__": {"cli"},
}
GENERATED_CODE_IMPORTERS = {
    "api.convert",
    "api.graph",
    "api.requests",
    "api.server",
    "api.servicer",
    "api.http.connect",
}
"""Where `_proto` messages become model values and back (convert, and graph and requests for
the console's fields), and where the services are served (Orchestrator, health, reflection over
gRPC; the same service over Connect)."""

RULES = Rules("maestro_server", LAYERS, "_proto", GENERATED_CODE_IMPORTERS)
IMPORTS = read_imports(ROOT, "maestro_server", skip="_proto")


def test_every_layer_has_a_rule() -> None:
    """A new package or top-level module needs a line in LAYERS before it can be imported."""
    assert uncovered_layers(ROOT, RULES) == []


def test_layers_import_only_what_their_rules_allow() -> None:
    """No module imports a layer above its own, a store or transport past its Protocol, or
    generated code outside the API's conversion and server modules."""
    assert forbidden_imports(IMPORTS, RULES) == []


def test_no_cycles_among_layers() -> None:
    """No two layers depend on each other, directly or through others."""
    assert layer_cycles(IMPORTS, RULES) == []


def test_top_level_modules_do_not_shadow_the_standard_library() -> None:
    """No `maestro_server/logging.py` beside the `logging` it would be confused with."""
    layers = {layer_of(name, "maestro_server") for name in module_names(ROOT, "maestro_server")}
    assert sorted(layer for layer in layers if layer in sys.stdlib_module_names) == []


def test_client_sdk_does_not_depend_on_the_server() -> None:
    """maestro_client ships alone: it never imports maestro_server."""
    imports = read_imports(ROOT, "maestro_client")
    assert imports, "the client's modules were read"
    assert [i for i in imports if i.imported.split(".")[0] == "maestro_server"] == []


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_reports_forbidden_imports_cycles_and_relative_imports(
    tmp_path: Path,
) -> None:
    """Run on a synthetic package, the checks find each kind of breach, relative ones too."""
    _tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/low/__init__.py": "",
            "app/low/base.py": "",
            "app/low/impl.py": "",
            "app/low/deep.py": "def f():\n    from app.high import user\n",
            "app/high/__init__.py": "from .ok import X\n",
            "app/high/ok.py": "from ..low.base import X\nfrom . import user\nimport app\n",
            "app/high/user.py": "import os\n\nfrom ..low import impl\n",
            "app/high/wire.py": "from app.gen import x_pb2\n",
            "app/api.py": "from app.gen import x_pb2\nfrom .high import wire\n",
            "app/gen/__init__.py": "",
            "app/gen/x_pb2.py": "",
            "app/one.py": "import app.two\n",
            "app/two.py": "from .one import thing\n",
            "app/stray.py": "",
        },
    )
    rules = Rules(
        "app",
        {
            "__init__": set(),
            "low": set(),
            "high": {"low.base"},
            "api": {"high"},
            "one": {"two"},
            "two": {"one"},
        },
        "gen",
        {"api"},
    )
    imports = read_imports(tmp_path, "app", skip="gen")
    assert uncovered_layers(tmp_path, rules) == ["stray"]
    assert sorted(forbidden_imports(imports, rules)) == [
        "app.high.user:3 imports app.low.impl",  # relative, past the allowed module
        "app.high.wire:1 imports app.gen.x_pb2",  # generated code outside its importers
        "app.low.deep:2 imports app.high.user",  # upwards, from inside a function
    ]
    assert layer_cycles(imports, rules) == [
        "high → low → high (app.high.ok:1 imports app.low.base; "
        "app.low.deep:2 imports app.high.user)",
        "one → two → one (app.one:1 imports app.two; app.two:1 imports app.one)",
    ]


@pytest.mark.parametrize("level", ["...", "...."])
def test_the_checker_refuses_a_relative_import_past_the_package(tmp_path: Path, level: str) -> None:
    """A relative import climbing out of the package is an error, not a silent pass."""
    _tree(tmp_path, {"app/__init__.py": "", "app/sub/__init__.py": "", "app/sub/m.py": ""})
    (tmp_path / "app/sub/m.py").write_text(f"from {level} import x\n")
    with pytest.raises(ValueError, match="beyond the top-level package"):
        read_imports(tmp_path, "app")
