"""Code identity: which code produced a set or a result (docs/design.md §3).

A result is only comparable with results of the same code. Every cached set and every record carries
the package version, a hash of the sources that produced it and the git revision where one exists:

- ``condenser``: the SHA-256 of the condenser's module and every module of the package it imports,
  followed statically through ``import`` statements (those inside functions included);
- ``evaluator``: the same for ``condense.evaluate``, which reaches the protocols, models, augmentation,
  graph training, data loaders and the file format.

Plumbing that cannot change a number (notes, paths, argument checks, the command line) is left out,
so editing an error message does not invalidate every result. The git revision is provenance only:
committing does not change a source hash, so it never forces a rerun by itself.
"""
from __future__ import annotations

import functools
import subprocess

from ._sources import ROOT, closure, source_hash
from ._version import __version__

__all__ = ["closure", "code_identity", "git_revision", "identity_key", "newest_identity", "source_hash"]


@functools.lru_cache(maxsize=None)
def git_revision() -> str | None:
    """The checkout's commit, with ``+dirty`` when the package sources differ from it; None outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(ROOT)], cwd=ROOT, capture_output=True,
                               text=True, timeout=10)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def code_identity(module: str | None = None, parts=("version", "condenser", "evaluator", "git")) -> dict:
    """The identity of the code a result comes from (the fields in ``parts``): ``module`` is the
    condenser's module (``type(condenser).__module__``; :func:`condense.methods.condenser_module` from
    a method's name). This module imports nothing of the methods, so no method module's import of it
    closes a circle."""
    out = {"version": __version__, "git": git_revision()}
    if module is not None:
        out["condenser"] = source_hash(closure(module))
    out["evaluator"] = source_hash(closure("condense.evaluate"))
    return {k: out[k] for k in parts if k in out}


def identity_key(code: dict | None) -> str:
    """What makes two records' code the same: the source hashes (never the git revision)."""
    if not code:
        return "no identity"
    return "/".join(str(code.get(k)) for k in ("condenser", "evaluator"))


def newest_identity(records: list[dict]) -> list[dict]:
    """Of one cell's records, those of the newest code identity (the one whose latest record is newest):
    a rerun under new code replaces the older numbers and never pools with them (the leaderboard's
    cells and ``verify``'s rows alike)."""
    by_id: dict[str, list[dict]] = {}
    for r in records:
        by_id.setdefault(identity_key(r.get("code")), []).append(r)
    newest = max(by_id, key=lambda i: max(str(r.get("created_utc", "")) for r in by_id[i]))
    return by_id[newest]
