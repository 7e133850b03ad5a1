"""Writing a set: the HDF5 layout, then the integrity seal, all through one atomic write."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from .. import replay as _replay
from .._paths import atomic_write
from .rules import check_set
from .spec import SEAL_MAGIC, USERBLOCK, HASH_CHUNK, FormatError, as_numpy
from .synset import SyntheticSet

def _dataset_kwargs(a: np.ndarray) -> dict:
    if a.size == 0:
        return {}
    kw: dict = {"fletcher32": True, "chunks": True}
    if a.nbytes >= 4096:
        kw.update(compression="gzip", compression_opts=4, shuffle=True)
    return kw


def _write_array(group, name: str, a: np.ndarray, **attrs):
    ds = group.create_dataset(name, data=a, **_dataset_kwargs(a))
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def save(synset: SyntheticSet, path: str | os.PathLike) -> Path:
    """Validate in memory, then write ``path`` atomically. Returns the path."""

    path = Path(path)
    problems = check_set(synset)
    if problems:
        raise FormatError(f"{path}: refusing to write an invalid set: {problems[0]}")
    def fill(tmp: Path) -> None:
        with h5py.File(tmp, "w", userblock_size=USERBLOCK, libver=("v110", "latest")) as f:
            _write(f, synset)
        _seal(tmp)

    atomic_write(path, fill=fill)
    synset.path = path
    return path


def _file_digest(fh) -> str:
    """SHA-256 of everything after the user block."""

    h = hashlib.sha256()
    fh.seek(USERBLOCK)
    for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
        h.update(chunk)
    return h.hexdigest()


def _seal(path: Path) -> None:
    """Write the integrity block: the SHA-256 of the HDF5 content, in the 512-byte user block."""
    with open(path, "rb+") as fh:
        block = SEAL_MAGIC + f"sha256={_file_digest(fh)}\n".encode()
        fh.seek(0)
        fh.write(block.ljust(USERBLOCK, b"\0"))
        fh.flush()
        os.fsync(fh.fileno())


def reseal(path: str | os.PathLike) -> None:
    """Re-stamp the integrity block after an intended edit of a file with plain h5py."""
    _seal(Path(path))


def verify_seal(path: Path) -> None:
    """Check the integrity block before HDF5 parses anything (corrupt metadata can crash HDF5)."""
    with open(path, "rb") as fh:
        block = fh.read(USERBLOCK)
        if len(block) < USERBLOCK or not block.startswith(SEAL_MAGIC):
            if block.startswith(b"\x89HDF"):
                raise FormatError(f"{path}: HDF5 file without the condense integrity block "
                                  "(not written by a condense writer; see docs/format.md §3)")
            raise FormatError(f"{path}: not a condense synthetic-set file (truncated, or another format)")
        line = block[len(SEAL_MAGIC):].split(b"\n", 1)[0]
        if not line.startswith(b"sha256=") or block != (SEAL_MAGIC + line + b"\n").ljust(USERBLOCK, b"\0"):
            raise FormatError(f"{path}: damaged integrity block")  # every byte of the block is its canonical form
        if line[7:].decode("ascii", "replace") != _file_digest(fh):
            raise FormatError(f"{path}: checksum mismatch: the file is corrupt, truncated or was modified "
                              "outside condense (condense.store.reseal re-seals an intended edit)")


def _write(f, s: SyntheticSet) -> None:
    meta = s.metadata()
    for key in ("format", "kind", "method", "source_dataset", "source_split", "source_fingerprint",
                "created_utc", "library_version", "device"):
        f.attrs[key] = str(meta[key])
    for key in ("format_version", "seed", "ipc", "num_classes"):
        f.attrs[key] = int(meta[key])
    for key in ("condense_seconds", "teacher_seconds"):
        f.attrs[key] = float(meta[key])
    for key in ("method_config", "class_names", "storage_bytes", "deviations", "extra"):
        f.attrs[key] = json.dumps(meta[key], sort_keys=True)
    for key in ("preprocessing", "release"):   # version 4, only when present
        if key in meta:
            f.attrs[key] = json.dumps(meta[key], sort_keys=True)
    if "synthetic_lr" in meta:
        f.attrs["synthetic_lr"] = float(meta["synthetic_lr"])
    if s.kind == "images":
        _write_array(f, "images", as_numpy(s.images), encoding=s.image_encoding,
                     mean=np.asarray(s.mean, np.float64), std=np.asarray(s.std, np.float64))
        _write_array(f, "labels", as_numpy(s.labels).astype(np.int64))
        if s.soft_labels is not None:
            _write_array(f, "soft_labels", as_numpy(s.soft_labels), policy=s.soft_label_policy,
                         attrs_json=json.dumps(s.soft_label_attrs, sort_keys=True))
        if s.replay is not None:
            g = f.create_group("replay")
            g.attrs["batch_size"] = int(s.replay_batch)
            g.attrs["set_sha256"] = _replay.set_digest(s.images, s.labels)
            for k in _replay.REPLAY_KEYS:
                _write_array(g, k, as_numpy(s.replay[k]))
        if s.compensators is not None:
            g = f.create_group("compensators")
            g.attrs["encoding"] = s.compensator_encoding
            g.attrs["pairing"] = "instances: every image alone, then per compensator k the images i with image_batch[i] == batch[k], composed as clip(x_i + u_k)"
            for k, v in s.compensators.items():
                _write_array(g, k, as_numpy(v))
    elif s.kind == "subset-schedule":
        _write_array(f, "indices", as_numpy(s.indices), source_size=int(s.source_size),
                     source_fingerprint=s.source_fingerprint)
    else:
        g = f.create_group("graphs")
        for k, v in s.graphs.items():
            if k == "tree_codes":

                g.create_dataset(k, data=np.array([str(c) for c in v], dtype=object),
                                 dtype=h5py.string_dtype("utf-8"))
            else:
                _write_array(g, k, as_numpy(v))

