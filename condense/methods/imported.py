"""Released sets as rows of a sweep: ``python -m benchmarks.run --import KIND:PATH[:NAME]`` (a sweep
file's ``import`` key) registers a condenser ``imported:KIND:NAME`` whose "condensation" is the
importer (:mod:`condense.format.importers`), so an imported set goes through the same cache, records,
protocols and tables as every condensed one. Its IPC is the release's own (its largest class); a
``dc`` file of several experiments gives experiment k to set seed k. Importer options are config
fields (``--set imported:mtt:datm.zca=true``).
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..checks import Rule, check_config
from ..format.importers import IMPORTERS, NAME, OPTIONS, import_release
from .base import Condenser, register_condenser, registered

SPEC = re.compile(r"(?P<kind>[a-z]+):(?P<rest>.+)")


@dataclass(frozen=True)
class ImportConfig:
    """Where the release is and how to read it (the options of ``python -m condense import``)."""

    kind: str = ""
    path: str = ""
    name: str = ""
    experiment: int | None = None
    zca: bool = False
    zca_eps: float = 0.1
    iteration: int | None = None
    shards: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    relabel: str | None = None
    fkd_seed: int = 42
    digest: str = ""     # SHA-256 over the release's files (names and bytes): a changed release is a new config

    def __post_init__(self):
        check_config(self, "imported", kind=Rule(choices=("", *IMPORTERS)), experiment=Rule(lo=0),
                     zca_eps=Rule(lo=0, hi=10, lo_open=True), iteration=Rule(lo=0), fkd_seed=Rule(lo=0))


class ImportedRelease(Condenser):
    """A release read by its importer; subclasses (one per ``--import``) fix ``release``."""

    Config = ImportConfig
    release: tuple[str, str, str] = ("", "", "")
    kinds = ("images",)
    default_run = False
    deterministic = True

    def __init__(self, config=None, **overrides):
        config = config if config is not None else ImportConfig()
        if not config.kind:
            kind, path, name = self.release
            config = replace(config, kind=kind, path=path, name=name)
        super().__init__(config, **overrides)
        if not self.config.digest:
            self.config = replace(self.config, digest=release_digest(self.config.path, self.config.relabel))

    def read(self, train, seed: int = 0):
        """The release as a set of ``train``'s dataset (a ``dc`` file: experiment ``seed`` unless one is set)."""
        c = self.config
        opts = {k: getattr(c, k) for k in OPTIONS}
        if c.experiment is None:
            opts["experiment"] = seed
        (s,) = import_release(c.kind, c.path, train.name, name=c.name, train=train, **opts)
        return s

    def condense(self, train, ipc: int, *, seed: int, device="cpu", progress: bool = False):
        s = self.read(train, seed)
        if s.ipc != ipc:
            raise ValueError(f"{self.config.path}: the release holds {s.ipc} images per class, not {ipc}")
        return s.with_meta(method=self.name, seed=seed, method_config=asdict(self.config),
                           extra={**s.extra, "importer_config": s.method_config,
                                  "code": self.code_identity(("version", "condenser", "git"))})


@functools.lru_cache(maxsize=64)
def release_digest(path: str, relabel: str | None = None) -> str:
    """SHA-256 over every file of the release (and its relabel folder): relative names and contents."""
    h = hashlib.sha256()
    for root in (p for p in (path, relabel) if p):
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for f in files:
            h.update(f"{f.relative_to(root) if f != root else f.name}\0".encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def parse_import(spec: str) -> tuple[str, str, str]:
    """``KIND:PATH[:NAME]`` -> (kind, path, name); NAME defaults to the file or folder's name."""
    m = SPEC.fullmatch(str(spec))
    if m is None or m["kind"] not in IMPORTERS:
        raise ValueError(f"--import expects KIND:PATH[:NAME] with KIND one of {', '.join(IMPORTERS)}, got {str(spec)[:80]!r}")
    path, _, name = m["rest"].rpartition(":")
    if not path or "/" in name:
        path, name = m["rest"], ""
    stem = re.sub(r"[^A-Za-z0-9_+-]", "-", path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".pt"))[:64] or "release"
    name = name or stem
    if not NAME.fullmatch(name):
        raise ValueError(f"--import {spec!r}: the name must be 1 to 64 letters, digits or '_+-', got {name!r}")
    return m["kind"], path, name


def register_release(spec: str) -> str:
    """Register the condenser of one ``--import`` and return its method name (the same release
    imported twice under one name is one method; two releases under one name are refused)."""
    kind, path, name = parse_import(spec)
    method = f"imported:{kind}:{name}"
    cls = registered(method)
    if cls is not None:
        if getattr(cls, "release", None) != (kind, path, name):
            raise ValueError(f"--import: two releases are named {method!r}; give one another :NAME")
        return method
    cls = type(f"Imported_{kind}_{name}", (ImportedRelease,),
               {"name": method, "release": (kind, path, name), "deterministic": kind != "dc"})
    register_condenser(cls)
    return method
