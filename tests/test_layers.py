"""The package graph runs one way: iot on top, then simulators, then ingest and registry, core at the bottom.

A module may import its own package and any package on a lower layer; packages on the same layer
(ingest, registry) do not import each other. Imports of our own packages sit at module level, where a
reader sees every arrow: a function-local import of one is refused.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS: dict[str, int] = {
    "core": 0,  # shared vocabulary: model, settings, store interfaces and errors
    "ingest": 1,  # the pipeline
    "registry": 1,  # the relational store
    "simulators": 2,  # device fleets; publish through ingest's broker helpers
    "iot": 3,  # the application: CLI and wiring
}


@dataclass(frozen=True)
class Violation:
    where: str
    line: int
    target: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: imports {self.target} ({self.why})"


def _package(module: str) -> str:
    return module.split(".", 1)[0]


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: resolve against the importing module's package
        base = module.split(".")[: -node.level]
        return [".".join([*base, node.module] if node.module else base)]
    return [node.module or ""]


def check_source(source: str, module: str, where: str) -> list[Violation]:
    """Every import in ``source`` (module ``module``) that runs against the layers."""
    own = _package(module)
    found: list[Violation] = []
    tree = ast.parse(source, filename=where)
    local: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            local |= {id(n) for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        for target in _targets(node, module):
            pkg = _package(target)
            if pkg not in LAYERS:
                continue
            if pkg != own and LAYERS[pkg] >= LAYERS[own]:
                why = "same layer" if LAYERS[pkg] == LAYERS[own] else "upper layer"
                found.append(Violation(where, node.lineno, target, f"{own} may not import {pkg}: {why}"))
            elif id(node) in local:
                found.append(Violation(where, node.lineno, target, "function-local import; import at module level"))
    return found


def _modules() -> list[tuple[Path, str]]:
    out = []
    for pkg in LAYERS:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append((path, ".".join(parts)))
    return out


def test_every_layer_package_has_a_docstring() -> None:
    for pkg in LAYERS:
        init = ROOT / pkg / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} says nothing about what {pkg} owns"


def test_imports_run_one_way() -> None:
    modules = _modules()
    assert len(modules) > 40  # the walk found the tree
    violations = [
        v for path, module in modules for v in check_source(path.read_text(), module, str(path.relative_to(ROOT)))
    ]
    assert not violations, "\n".join(map(str, violations))


def test_checker_refuses_back_arrows_peers_and_hidden_imports() -> None:
    """The checker itself: each kind of bad arrow is reported, good ones are not."""
    source = (
        "from core.model import Point\n"
        "import registry.db\n"
        "from iot.cli import app\n"
        "from . import writer\n"
        "def f():\n"
        "    from ingest.writing.spool import Spool\n"
        "    import json\n"
    )
    found = check_source(source, "ingest.daemon", "ingest/daemon.py")
    assert [(v.line, v.target) for v in found] == [(2, "registry.db"), (3, "iot.cli"), (6, "ingest.writing.spool")]
    assert "same layer" in found[0].why and "upper layer" in found[1].why and "function-local" in found[2].why
    assert check_source("from ingest.daemon import Daemon\n", "iot.service", "iot/service.py") == []
    assert check_source("from .. import model\n", "core.sub.x", "core/sub/x.py") == []
