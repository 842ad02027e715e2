"""No import circles in harness/ and python_impl/ (issue 19 item 7): every module imports only
modules below it. Imports inside functions count too (a lazy import hides a circle; it does not
break it); `if TYPE_CHECKING:` imports do not (they never run)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "python_impl")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            if "_go_peer" in path.parts:
                continue
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    return skip


def _absolute(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The module a `from … import` names; a relative one resolved against the module's package
    (`from . import x` closes a circle as surely as the absolute import)."""
    if node.level == 0:
        return str(node.module)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that module `name` imports, anywhere in its body. `from pkg import
    sub` where sub is a submodule depends on sub (and on pkg only for names that are not modules)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    wanted: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            wanted |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
            base = _absolute(name, path, node)
            for a in node.names:
                full = f"{base}.{a.name}"
                wanted.add(full if full in modules else base)
    found = set()
    for dep in wanted:
        while dep and dep not in modules:
            dep = dep.rpartition(".")[0]
        if dep and dep != name:
            found.add(dep)
    return found


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
    return out


def test_no_import_circle() -> None:
    modules = _modules()
    graph = {name: imports(name, path, modules) for name, path in modules.items()}
    found = [sorted(c) for c in cycles(graph)]
    assert not found, f"import circles (each module must import only modules below it): {found}"


def test_subpackages_form_layers() -> None:
    """harness's subpackages (protoset, cases, engines, run, report, …) and python_impl's modules: each
    imports only those below it, so no two import each other even through different modules."""
    modules = _modules()

    def step(name: str) -> str:
        return ".".join(name.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph.setdefault(step(name), set()).update(step(d) for d in imports(name, path, modules)
                                                   if step(d) != step(name))
    assert not cycles(graph), f"subpackages that import each other: {cycles(graph)}"


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [{"a", "b", "c"}]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_cycles_finds_a_circle_of_lazy_imports(graph: dict[str, set[str]], expected: list[set[str]]) -> None:
    assert cycles(graph) == expected


def test_a_lazy_import_is_an_import(tmp_path: Path) -> None:
    """The circle issue 19 named (peer -> codegen -> gotoolchain -> peer) was closed by an import inside
    a function: it must count."""
    mod = tmp_path / "m.py"
    mod.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import harness.cli\n"
                   "def f():\n    from harness.engines.peer import docker_client\n")
    assert imports("x", mod, {"harness.engines.peer": mod, "harness.cli": mod}) == {"harness.engines.peer"}


def test_prepare_loads_the_set_once(tmp_path: Path) -> None:
    """prepare() loads the proto set once and hands the loaded set along (issue 19 item 7): a set
    with no message-only file gets no echo files, and before, each step loaded it again. In a process
    of its own: one process imports one proto set's generated code."""
    (tmp_path / "once.proto").write_text('syntax = "proto3";\npackage once.v1;\nmessage Ping { string text = 1; }\n'
                                         "service Once { rpc Echo(Ping) returns (Ping); }\n")
    script = ("import sys\nfrom harness.protoset import echo\nfrom harness.run.runner import prepare\n"
              "calls = []\nreal = echo.with_echo\n"
              "echo.with_echo = lambda *a, **kw: calls.append(1) or real(*a, **kw)\n"
              "prepared = prepare(sys.argv[1], profile='quick')\n"
              "print(prepared.protoset.loaded, len(calls))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "1"], f"loaded, times the set was loaded: {proc.stdout}"


def test_a_relative_import_is_an_import(tmp_path: Path) -> None:
    """`from . import codegen` in harness/protoset/gotoolchain.py closes a circle as surely as the
    absolute import: it must count (resolved against the module's package)."""
    mod = tmp_path / "m.py"
    mod.write_text("from . import codegen\nfrom .model import ProtoSet\nfrom ..engines import peer\n")
    modules = {"harness.protoset.codegen": mod, "harness.protoset.model": mod, "harness.engines.peer": mod,
               "harness.protoset.gotoolchain": mod}
    assert imports("harness.protoset.gotoolchain", mod, modules) == {
        "harness.protoset.codegen", "harness.protoset.model", "harness.engines.peer"}
