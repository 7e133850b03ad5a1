"""No import circle among the modules of ``condense`` and ``benchmarks``, counting imports inside
functions and package ``__init__``s: a circle that only closes when a function runs is still a
circle (the order of a first import decides whether it works)."""
from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PACKAGES = ("condense", "benchmarks")


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of :data:`PACKAGES` (a package as its name)."""
    out = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = f.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _targets(node, package: str) -> list[str]:
    """The dotted names an import statement may load (``from X import a``: X and X.a)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source. A module's import of its own
    ancestor package is left out (Python runs that ``__init__`` before the module, never after)."""
    mods = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _targets(node, package):
                while target and target not in mods:  # a name imported from a module: the module
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iteratively)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
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
                    group = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        group.append(w)
                        if w == v:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return found


def test_the_checker_finds_a_circle_closed_inside_a_function(tmp_path):
    """The check itself: a function-level import that closes a loop through a package ``__init__`` is
    a circle; a module importing its own package is not."""
    pkg = tmp_path / "condense"
    (pkg / "methods").mkdir(parents=True)
    (tmp_path / "benchmarks").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "identity.py").write_text("def f():\n    from .methods import thing\n")
    (pkg / "methods" / "__init__.py").write_text("from . import base\n")
    (pkg / "methods" / "base.py").write_text("from ..identity import f\nfrom . import thing\n")
    (pkg / "methods" / "thing.py").write_text("import condense.methods\n")
    assert circles(import_graph(tmp_path)) == [["condense.identity", "condense.methods", "condense.methods.base"]]
    (pkg / "identity.py").write_text("def f():\n    pass\n")
    assert circles(import_graph(tmp_path)) == []


def test_no_import_circle_in_the_project():
    found = circles(import_graph(REPO))
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


IMAGE_WORK = """
import sys
import benchmarks.run, benchmarks.leaderboard, condense, condense.__main__
from condense.data import load_dataset
from condense.evaluate import evaluate
from condense.methods import create_condenser
train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
s = create_condenser("random").condense(train, 1, seed=0)
from condense.protocols import get_protocol
r = evaluate(s, test, protocol=get_protocol("dc").replace(epochs=2, checkpoints=1), seeds=[0], source=train)
print("after images:", sorted({m.split(".")[0] for m in sys.modules if m.startswith(("torch_geometric", "torchvision"))}))
from condense.models import create_model, GraphClassifier
g = load_dataset("MUTAG", "train")
model = create_model("gcn", g.num_node_features, 2)
print("after graphs:", isinstance(model, GraphClassifier), "torch_geometric" in sys.modules)
"""


def test_image_work_never_imports_torch_geometric():
    """The CLI, the sweep, the leaderboard and an image condensation and evaluation leave torch_geometric
    and torchvision unimported (each loads ``torch._dynamo``: seconds on every start); the first graph
    dataset and graph model load torch_geometric."""
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", IMAGE_WORK], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "after images: []" in r.stdout and "after graphs: True True" in r.stdout, r.stdout
