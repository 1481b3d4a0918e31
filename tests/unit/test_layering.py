"""Only streamproc/runtime/ may touch the internals of faust-streaming, mode and aiokafka: a
private name of theirs (a leading underscore) anywhere else in the package fails here, so an
upstream rename breaks this suite and the runtime's version guard, never a safeguard quietly."""

from __future__ import annotations

import ast
import importlib.machinery
import re
from pathlib import Path

import streamproc

PACKAGE = Path(streamproc.__file__).parent
UPSTREAM = ("faust", "mode", "aiokafka")
# streamproc's own private names that faust, mode or aiokafka happen to use too
OWN = {"_value": "config.env.Secret", "_runner": "dev.sandbox.server.FakeApi"}


def _private_names() -> set[str]:
    """Every private identifier faust, mode and aiokafka define or use (attributes, methods,
    module globals): `_name`, not dunders."""
    names: set[str] = set()
    for mod in UPSTREAM:
        # the path finder, not importlib.util.find_spec: once imported, faust replaces its
        # module in sys.modules with one whose __spec__ is None (find_spec raises then)
        root = Path(importlib.machinery.PathFinder.find_spec(mod).origin).parent
        for path in root.rglob("*.py"):
            names.update(re.findall(r"\b(_[A-Za-z0-9]\w*)\b", path.read_text("utf-8", "replace")))
    return {n for n in names if not n.endswith("__")} - set(OWN)


def violations(source: str, private: set[str]) -> list[str]:
    """`x._name`, getattr/hasattr/setattr(x, "_name"), x.__dict__ lookups of "_name", and
    `from faust... import _name`, for the upstream private names (self/cls excepted)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in private and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            out.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value in private:
            out.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UPSTREAM:
            out += [f"line {node.lineno}: import {a.name}" for a in node.names
                    if a.name.startswith("_")]
    return out


def test_no_module_outside_the_runtime_names_a_private_name_of_faust_mode_or_aiokafka():
    private = _private_names()
    assert {"_committed_offset", "_consumer", "_dbs", "_current_event"} <= private
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "runtime":
            continue
        bad = violations(path.read_text("utf-8"), private)
        if bad:
            found[str(rel)] = bad
    assert not found, f"private faust/mode/aiokafka names outside streamproc/runtime: {found}"


def test_the_check_sees_each_way_of_reaching_a_private_name():
    private = {"_acked", "_current_event"}
    src = ("c._acked\ngetattr(c, '_acked', None)\nc.__dict__.get('_acked')\n"
           "from faust.streams import _current_event\nself._acked\nc.acked\n")
    assert sorted(violations(src, private)) == ["line 1: ._acked", "line 2: '_acked'",
                                        "line 3: '_acked'", "line 4: import _current_event"]


def test_the_runtime_package_stays_small():
    """Everything that extends faust stays readable in one sitting (issue 13: at most 800
    lines, where the layer it replaced had about 1,250)."""
    lines = sum(len(p.read_text("utf-8").splitlines()) for p in (PACKAGE / "runtime").glob("*.py"))
    assert lines <= 800, lines


def test_no_module_passes_400_lines():
    """A module that passes ~400 lines is asking to be split (issue 17)."""
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}, long
