"""The package graph: no import cycles, no function-level imports, layers import downwards only.

Layers (docs/ARCHITECTURE.md), bottom to top:
``emulator.contracts`` -> ``worker``, ``rendezvous`` (ship to AWS alone) -> the emulator's
services -> ``sim`` -> ``realaws`` -> ``emulator.cli`` (the roof).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("worker", "emulator", "sim", "realaws", "rendezvous")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names (``a.b.c`` may be module ``a.b`` plus attribute ``c``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Module -> project modules it imports; and every import inside a function (module, line, name)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    nested: list[tuple[str, int, str]] = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        function_lines: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function_lines |= {n.lineno for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            if not targets:
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            hits = {t for t in (_resolve(n, modules) for n in targets) if t and t != mod}
            if getattr(node, "lineno", None) in function_lines and hits:
                nested.append((mod, node.lineno, ", ".join(sorted(hits))))
            if _is_type_checking_only(tree, node):
                continue
            graph[mod] |= hits
    return graph, nested


def _is_type_checking_only(tree: ast.AST, target: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            if any(n is target for n in ast.walk(node)):
                return True
    return False


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_function_level_imports_of_the_project():
    _, nested = import_graph()
    assert nested == []


def _imports_of(prefix: str) -> set[str]:
    graph, _ = import_graph()
    return {dep for mod, deps in graph.items() if mod == prefix or mod.startswith(prefix + ".") for dep in deps}


def test_contracts_import_nothing_else_from_the_project():
    assert {d for d in _imports_of("emulator.contracts") if not d.startswith("emulator.contracts")} == set()


def test_worker_and_rendezvous_ship_alone():
    # The worker image carries worker/ and rendezvous/ (the collectives pair through it).
    assert {d.split(".")[0] for d in _imports_of("rendezvous")} <= {"rendezvous"}
    assert {d.split(".")[0] for d in _imports_of("worker")} <= {"worker", "rendezvous"}


def test_only_the_cli_imports_sim_and_realaws_with_the_emulator():
    graph, _ = import_graph()
    for mod, deps in graph.items():
        if mod.startswith("emulator.cli"):
            continue
        tops = {d.split(".")[0] for d in deps}
        if mod.startswith("emulator"):
            assert not tops & {"sim", "realaws"}, mod
        if mod.startswith("sim"):
            assert "realaws" not in tops, mod
            assert all(d.startswith(("emulator.contracts", "emulator.stepfunctions")) for d in deps
                       if d.startswith("emulator")), mod


def test_aws_identity_literals_live_only_in_the_contracts():
    pattern = re.compile(r"000000000000|us-east-1|25_000_000")
    offenders = []
    for pkg in PACKAGES + ("bench",):
        for path in (REPO / pkg).rglob("*.py"):
            if path.is_relative_to(REPO / "emulator" / "contracts"):
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []
