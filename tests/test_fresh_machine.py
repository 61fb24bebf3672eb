"""A fresh machine works: every import declared, bench scripts runnable as documented."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("worker", "emulator", "sim", "realaws", "rendezvous")
BENCH = sorted((REPO / "bench").glob("*.py"))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions(pyproject: Path = REPO / "pyproject.toml") -> set[str]:
    """Distribution names in ``dependencies`` and every optional extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return {_normalise(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in reqs}


def imported_top_levels(root: Path) -> dict[str, Path]:
    """Top-level module names imported by the ``.py`` files under ``root`` (absolute imports only)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def undeclared_imports(roots: list[Path], declared: set[str]) -> dict[str, Path]:
    """Imports that are not stdlib, not the project, and whose distribution is not declared."""
    dists = md.packages_distributions()
    missing: dict[str, Path] = {}
    for root in roots:
        for top, where in imported_top_levels(root).items():
            if top in sys.stdlib_module_names or top in PACKAGES or top in ("__future__", "tests"):
                continue
            candidates = {_normalise(d) for d in dists.get(top, [top])}
            if not candidates & declared:
                missing[top] = where
    return missing


def test_every_import_of_the_packages_is_declared():
    missing = undeclared_imports([REPO / p for p in PACKAGES], declared_distributions())
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_check_catches_an_undeclared_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "mod.py").write_text("import json\nimport yaml\nfrom worker import infer\n")
    missing = undeclared_imports([pkg], {"torch"})
    assert set(missing) == {"yaml"}  # json is stdlib, worker is the project


def test_tests_and_benchmarks_import_only_declared_packages():
    missing = undeclared_imports([REPO / "tests", REPO / "bench"], declared_distributions())
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_no_bench_script_shadows_a_package():
    assert not {p.stem for p in BENCH} & set(PACKAGES)


@pytest.mark.parametrize("script", BENCH, ids=[p.name for p in BENCH])
def test_bench_script_help_runs_from_the_repo_root(script):
    # `python bench/X.py` puts bench/ first on sys.path, exactly as the README runs it.
    proc = subprocess.run([sys.executable, str(script.relative_to(REPO)), "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
