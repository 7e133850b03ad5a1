"""The package's own sources, followed through their imports and hashed (``condense.identity``'s
code identity and the teacher cache's key). Imports nothing of the package, so any module may use it.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from pathlib import Path

PACKAGE = "condense"
ROOT = Path(__file__).resolve().parent
PLUMBING = {"condense._log", "condense._paths", "condense.checks", "condense._version", "condense.__main__",
            "condense.identity", "condense._sources", "condense._alloc"}


def _module_file(name: str) -> Path | None:
    if name.split(".")[0] != PACKAGE:  # a plugin's module: where Python found it
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # not importable by name (code run without a module file)
            return None
        return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None
    rel = name.split(".")[1:]
    base = ROOT.joinpath(*rel)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(name: str, path: Path) -> set[str]:
    """Package modules that ``name`` imports, anywhere in its source."""
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != PACKAGE:
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if _module_file(f"{mod}.{a.name}")}
    return out


@functools.lru_cache(maxsize=None)
def closure(name: str) -> tuple[str, ...]:
    """``name`` and every package module it reaches through imports, plumbing left out."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        mod = todo.pop()
        if mod in seen or mod in PLUMBING:
            continue
        path = _module_file(mod)
        if path is None:
            continue
        seen.add(mod)
        todo.extend(_imports(mod, path))
    return tuple(sorted(seen))


def source(mod: str) -> bytes:
    """The source of one package module, as its hash reads it."""
    return _module_file(mod).read_bytes()


def source_hash(modules) -> str:
    """The SHA-256 (16 hex digits) of ``modules``' sources, in name order."""
    h = hashlib.sha256()
    for mod in sorted(modules):
        h.update(mod.encode() + b"\0" + source(mod) + b"\0")
    return h.hexdigest()[:16]
