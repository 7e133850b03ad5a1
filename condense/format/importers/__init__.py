"""Importers: turn a released synthetic set into a checked, self-describing file (``docs/importing.md``).

One importer per release layout:

- ``dc``: the DC / DSA / DM codebase's ``res_<method>_<dataset>_<model>_<ipc>ipc.pt`` (:mod:`.dc`);
- ``mtt``: MTT, DATM, FTD and TESLA folders of ``images_best.pt``, ``labels_best.pt``, ``lr_best.pt``,
  ZCA-whitened or not, or shards (:mod:`.mtt`);
- ``folder``: an image folder, one sub-folder per class, with an optional FKD relabel folder that
  becomes the replay part (:mod:`.folder`, :mod:`.relabel`).

Each reads only what it needs, with ``torch.load(weights_only=True)``; every shape, dtype, class
count and label range is checked against the named dataset before anything is written, and each
failure is one line naming the file. ``python -m condense import KIND PATH --dataset NAME --out X.h5``
is the command line.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..rules import check_set
from ..spec import FormatError
from ..write import save
from . import dc, folder, mtt

IMPORTERS = {"dc": dc.read, "mtt": mtt.read, "folder": folder.read}
#: every importer option; each importer reads its own and ignores the rest
OPTIONS = ("experiment", "mean", "std", "zca", "zca_eps", "iteration", "shards", "relabel", "fkd_seed")
NAME = re.compile(r"[A-Za-z0-9_+-]{1,64}")


def import_release(kind: str, path, dataset: str, *, name: str | None = None, root=None, **options) -> list:
    """The sets of one release (``dc`` files hold one per experiment), checked, not yet written.

    Args:
        kind: ``dc``, ``mtt`` or ``folder``.
        path: the release file (``dc``) or folder (``mtt``, ``folder``).
        dataset: the suite's name of its source dataset (``cifar10``); its training split must be present.
        name: the leaderboard's row name, ``imported:<kind>:<name>`` (default from the file or folder).
        root: where the dataset lives (default ``$CONDENSE_DATA``).
        **options: ``experiment`` (dc), ``mean``/``std`` (dc, mtt without ZCA), ``zca``, ``zca_eps``,
            ``iteration``, ``shards`` (mtt), ``relabel``, ``fkd_seed`` (folder).
    """
    if kind not in IMPORTERS:
        raise ValueError(f"unknown release kind {kind!r}; available: {', '.join(IMPORTERS)}")
    if name is not None and not NAME.fullmatch(name):
        raise ValueError(f"--name must be 1 to 64 letters, digits or '_+-', got {str(name)[:80]!r}")
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or folder")
    return IMPORTERS[kind](path, dataset, name=name, root=root, **options)


def out_paths(out, count: int) -> list[Path]:
    """``X.h5`` for one set; ``X-exp0.h5``, ``X-exp1.h5``, … for a file of several experiments."""
    out = Path(out)
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-exp{k}{out.suffix or '.h5'}") for k in range(count)]


def import_to(kind: str, path, dataset: str, out, **kw) -> list[Path]:
    """Import and write each set (atomically, after every set passed every check)."""
    sets = import_release(kind, path, dataset, **kw)
    paths = out_paths(out, len(sets))
    for s, p in zip(sets, paths):   # every set checked before the first is written
        problems = check_set(s)
        if problems:
            raise FormatError(f"{path}: {problems[0]}")
    return [save(s, p) for s, p in zip(sets, paths)]


__all__ = ["IMPORTERS", "OPTIONS", "import_release", "import_to", "out_paths"]
