"""Where data is read from and where derived files are written, and how they are written.

Data roots may be read-only. Everything the library derives (decoded arrays, processed graph
sets, teacher checkpoints, condensed-set caches) goes under the writable cache folder. A cache that
cannot be written is reported in one line (:class:`CacheError`) before any work that would be lost.

Every file the suite writes goes through :func:`atomic_write`: a temporary file in the destination
folder, flushed and fsynced, renamed over the destination, then the folder fsynced. A reader never
sees a half-written file, and files get the user's umask (not ``mkstemp``'s 0600).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, IO

DEFAULT_DATA = Path("~/.cache/condense/data")
DEFAULT_CACHE = Path("~/.cache/condense/cache")


class CacheError(OSError):
    """The cache folder cannot be created or written: the message names it and the fix."""


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


def cache_base() -> Path:
    return Path(os.environ.get("CONDENSE_CACHE") or DEFAULT_CACHE).expanduser()


def cache_dir(*parts: str, write: bool = True) -> Path:
    """A folder under ``$CONDENSE_CACHE`` (default ``~/.cache/condense/cache``).

    ``write=True`` creates it and checks that a file can be created there (permission bits alone do
    not tell: root ignores them), raising :class:`CacheError` otherwise. ``write=False`` only names
    it, for reading what may already be cached."""
    path = cache_base().joinpath(*parts)
    if not write:
        return path
    problem = unwritable(path)
    if problem:
        raise CacheError(f"cache folder {path} is not writable ({problem}); set CONDENSE_CACHE to a writable folder")
    return path


def unwritable(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (created if missing), or None when they can. Tried,
    not guessed from permission bits, which root ignores."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True).close()
        return None
    except OSError as e:
        return e.strerror or type(e).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None] | None = None, *,
                 data: bytes | None = None, fill: Callable[[Path], None] | None = None) -> Path:
    """Write ``path`` atomically: ``write(fileobj)``, ``data`` bytes, or ``fill(tmp_path)`` for
    libraries that open the file themselves (HDF5). The file gets mode ``0o666 & ~umask``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            if write is not None:
                write(f)
            elif data is not None:
                f.write(data)
        if fill is not None:
            fill(tmp)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def download_allowed(download: bool | None) -> bool:
    """``download=None`` defers to ``$CONDENSE_DOWNLOAD`` (off unless set to 1/true/yes)."""
    if download is not None:
        return bool(download)
    return os.environ.get("CONDENSE_DOWNLOAD", "").strip().lower() in {"1", "true", "yes"}
