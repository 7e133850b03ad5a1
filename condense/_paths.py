"""Where data is read from and where derived files are written.

Data roots may be read-only. Everything the library derives (decoded arrays, processed graph
sets, teacher checkpoints, condensed-set caches) goes under the writable cache folder.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA = Path("~/.cache/condense/data")
DEFAULT_CACHE = Path("~/.cache/condense/cache")


def data_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Roots searched for a dataset, in order: ``root``, else ``$CONDENSE_DATA``, then the default."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root).expanduser())
    elif os.environ.get("CONDENSE_DATA"):
        roots.append(Path(os.environ["CONDENSE_DATA"]).expanduser())
    default = DEFAULT_DATA.expanduser()
    if default not in roots:
        roots.append(default)
    return roots


def cache_dir(*parts: str) -> Path:
    """A writable folder under ``$CONDENSE_CACHE`` (default ``~/.cache/condense/cache``), created."""
    base = Path(os.environ.get("CONDENSE_CACHE") or DEFAULT_CACHE).expanduser()
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def download_allowed(download: bool | None) -> bool:
    """``download=None`` defers to ``$CONDENSE_DOWNLOAD`` (off unless set to 1/true/yes)."""
    if download is not None:
        return bool(download)
    return os.environ.get("CONDENSE_DOWNLOAD", "").strip().lower() in {"1", "true", "yes"}
