"""The package layout's rules: the import-linter contracts in pyproject.toml (layers import
downward only, a pure core, agents kept from the HTTP pages and operator commands), checked
by the maintained tool, and no import cycle among streamproc's modules (function-local too)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

import streamproc

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(*args: str, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "lint-imports"
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([*cmd, "--no-cache", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=240)


def test_the_layering_contracts_of_pyproject_are_kept():
    res = _lint_imports(cwd=ROOT, pythonpath=Path(streamproc.__file__).parents[1])
    assert res.returncode == 0, res.stdout + res.stderr
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", res.stdout)
    assert kept and int(kept.group(1)) >= 4, res.stdout  # the config was read


def test_lint_imports_fails_on_an_upward_import(tmp_path):
    """The check above can fail: the same tool, on a two-layer package whose lower layer
    imports the upper one (a function-local import, as streamproc's cycles were hidden)."""
    pkg = tmp_path / "layered"
    for mod in ("__init__", "top", "low"):
        (pkg / f"{mod}.py").parent.mkdir(exist_ok=True)
        (pkg / f"{mod}.py").write_text('"""x."""\n')
    (pkg / "low.py").write_text("def f():\n    from layered import top\n    return top\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = layered\n\n[importlinter:contract:layers]\n"
        "name = Layers\ntype = layers\nlayers =\n    layered.top\n    layered.low\n")
    res = _lint_imports(cwd=tmp_path, pythonpath=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "layered.low -> layered.top" in res.stdout, res.stdout


def import_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    mods = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in mods:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in mods or c.startswith(package + ".")),
                         None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(
                        graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def _describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    lines = []
    for a in cycle:
        for b in cycle:
            if a != b and graph.direct_import_exists(importer=a, imported=b):
                for d in graph.get_import_details(importer=a, imported=b):
                    lines.append(f"  {a} -> {b} (l.{d['line_number']}: "
                                 f"{d['line_contents'].strip()})")
    return "\n".join(lines)


def test_no_import_cycle_among_streamprocs_modules():
    """grimp (import-linter's graph) reads every import statement, function-local ones and
    those under TYPE_CHECKING included."""
    graph = grimp.build_graph("streamproc", cache_dir=None)
    cycles = import_cycles(graph, "streamproc")
    assert not cycles, "import cycles:\n" + "\n\n".join(_describe(graph, c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle_through_a_function_local_import(tmp_path, monkeypatch):
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclic import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyclic import a\n    return a\n")
    (pkg / "c.py").write_text("from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclic", cache_dir=None)
    assert import_cycles(graph, "cyclic") == [["cyclic.a", "cyclic.b"]]
