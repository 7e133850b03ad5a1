"""Shared pieces of the dataset loaders: errors, hashing, atomic cache writes, stratified splits."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._log import note
from .._paths import CacheError, atomic_write

SPLITS = ("train", "val", "test")
SPLIT_SEED = 0


#: the TU graph datasets the suite names (any other non-image name is looked up as a TU dataset too)
KNOWN_TU = ("MUTAG", "PROTEINS", "NCI1", "ENZYMES", "PTC_MR", "IMDB-BINARY", "DD")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is missing from every data root and cannot be downloaded."""


class DatasetError(ValueError):
    """A dataset file is damaged or not what its name says: the message names the file."""


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def content_hash(*arrays: np.ndarray | bytes | str) -> str:
    """A stable 32-hex-digit BLAKE2b hash of arrays (dtype, shape and bytes) and strings."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if isinstance(a, str):
            h.update(b"s" + a.encode())
        elif isinstance(a, bytes):
            h.update(b"b" + a)
        else:
            a = np.ascontiguousarray(a)
            h.update(f"a{a.dtype.str}{a.shape}".encode())
            h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def derived_fingerprint(parent: str, spec: dict) -> str:
    """Fingerprint of a split derived from a content-hashed parent by a recorded rule."""
    return content_hash(parent, json.dumps(spec, sort_keys=True))


def stratified_holdout(labels: np.ndarray, size: int, seed: int = SPLIT_SEED) -> np.ndarray:
    """Indices of a class-stratified holdout of exactly ``size`` items, drawn with ``seed``.

    Each class gives its share of ``size`` (largest-remainder rounding); the result is sorted.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if not 0 < size < len(labels):
        raise ValueError(f"holdout size {size} must lie in (0, {len(labels)})")
    exact = counts * size / len(labels)
    take = np.floor(exact).astype(int)
    rest = size - take.sum()
    order = np.argsort(-(exact - take), kind="stable")
    take[order[:rest]] += 1
    rng = np.random.default_rng(seed)
    chosen = []
    for c, k in zip(classes, take):
        idx = np.flatnonzero(labels == c)
        chosen.append(idx[rng.permutation(len(idx))[:k]])
    return np.sort(np.concatenate(chosen))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, data=data)


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when it is missing or unreadable (then it is rebuilt).

    Never unpickles: ``allow_pickle=False`` refuses object arrays and plain pickles alike."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def try_cache(what: str, fn) -> bool:
    """Run a cache write; when the cache cannot be written, say so once and go on without it."""
    try:
        fn()
        return True
    except OSError as e:
        if what not in _WARNED:
            _WARNED.add(what)
            why = str(e) if isinstance(e, CacheError) else \
                f"{e.strerror or str(e) or type(e).__name__}; set CONDENSE_CACHE to a writable folder"
            note(f"{what} not cached: {why}")
        return False


_WARNED: set[str] = set()


def stat_signature(paths: Iterable[Path]) -> str:
    """A cheap signature of source files: names, sizes and modification times."""
    parts = []
    for p in paths:
        st = p.stat()
        parts.append(f"{p}|{st.st_size}|{st.st_mtime_ns}")
    return content_hash("\n".join(parts))


def not_found(name: str, looked: Sequence[str], how: str, note: str = "") -> DatasetNotFoundError:
    where = "; ".join(looked) if looked else "(no roots)"
    note = f" ({note})" if note else ""
    return DatasetNotFoundError(f"dataset {name!r} not found{note}. Looked in: {where}. To provide it: {how}")
