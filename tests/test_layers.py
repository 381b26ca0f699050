"""The server's layers, enforced: import contracts (import-linter, configured in
pyproject.toml), no import cycles at run time, and modules small enough to read.

* Layers: ``main | cli`` -> ``http`` -> ``node`` -> ``amqp | cluster`` -> ``model``
  -> ``core``; TYPE_CHECKING imports count, so the model cannot even name a
  connection's type (it uses ``model.delivery``'s protocols). ``protocol`` and
  ``storage`` import nothing of the server, nor each other.
* Cycles: no two modules import each other, directly or through others, at run
  time (function-level imports included). Inside one layer, a module may name
  another's type under TYPE_CHECKING in both directions (a queue names its vhost,
  the vhost holds queues): those are annotations, not imports that run.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("warren.server", "warren.protocol", "warren.storage")


@pytest.mark.timeout(120)
def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    r = subprocess.run([exe, "--no-cache", "--config", "pyproject.toml"], cwd=ROOT,
                       capture_output=True, text=True, timeout=110)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


@pytest.mark.timeout(120)
def test_no_import_cycles_at_run_time() -> None:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, exclude_type_checking_imports=True)
    assert _cycles(graph) == []


@pytest.mark.timeout(120)
def test_no_type_level_cycles_between_packages() -> None:
    """Counting annotations too, packages (folders) still form no cycle."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    pkgs = {m.rpartition(".")[0] if not graph.find_children(m) else m for m in graph.modules}
    edges: dict[str, set[str]] = {}
    for m in graph.modules:
        src = m if graph.find_children(m) else m.rpartition(".")[0]
        for t in graph.find_modules_directly_imported_by(m):
            dst = t if graph.find_children(t) else t.rpartition(".")[0]
            if src != dst and not dst.startswith(src + ".") and not src.startswith(dst + "."):
                edges.setdefault(src, set()).add(dst)
    folded = grimp.ImportGraph()
    for p in pkgs:
        folded.add_module(p)
    for src, dsts in edges.items():
        for dst in dsts:
            folded.add_import(importer=src, imported=dst)
    assert _cycles(folded) == []


@pytest.mark.parametrize("top", ["server", "protocol", "storage"])
def test_no_module_over_600_lines(top: str) -> None:
    big = {str(p.relative_to(ROOT)): n for p in (ROOT / top).rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 600}
    assert big == {}


def test_channel_class_under_400_lines() -> None:
    tree = ast.parse((ROOT / "server" / "amqp" / "channel.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Channel"]
    assert cls.end_lineno - cls.lineno + 1 <= 400
