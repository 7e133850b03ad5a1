"""Reading a set: the seal, the structural preflight of a possibly hostile file, then the parts."""
from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from .. import replay as _replay
from .._log import one_line
from .rules import check_set
from .spec import (DTYPES, GRAPH_OBJECT_BYTES, ALLOWED_FILTERS, COMPENSATOR_KEYS, COMPENSATOR_OPTIONAL, FORMAT, GRAPH_OPTIONAL, GRAPH_REQUIRED,
                   KINDS, MAX_EXPANSION, MAX_OBJECTS, MAX_PIXEL_EXPANSION, SUPPORTED_VERSIONS, FormatError,
                   max_set_bytes)
from .synset import SyntheticSet
from .write import verify_seal

def load(path: str | os.PathLike) -> SyntheticSet:
    """Read and fully validate a synthetic-set file. Raises :class:`FormatError` on any problem."""
    path = Path(path)
    s, recorded_bytes = _read(path)
    try:
        problems = check_set(s)
    except FormatError:
        raise
    except (ValueError, TypeError, RuntimeError, IndexError, OverflowError, MemoryError) as e:
        # whatever the content makes torch raise is the file's problem, in one line
        raise FormatError(f"{path}: content fails the format's checks ({type(e).__name__}: {one_line(e)[:200]})") from None
    if problems:
        raise FormatError(f"{path}: {problems[0]}")
    if recorded_bytes != s.storage_bytes:
        raise FormatError(f"{path}: recorded storage_bytes {recorded_bytes} do not match the stored parts "
                          f"{s.storage_bytes}")
    return s


def validate(path: str | os.PathLike) -> SyntheticSet:
    """Like :func:`load`; the name documents intent in scripts (``validate(p)`` raises or returns)."""
    return load(path)


def _read(path: Path) -> tuple[SyntheticSet, dict]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except OSError as e:
        raise FormatError(f"{path}: cannot be read: {one_line(e)[:200]}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FormatError(f"{path}: is a directory, not a synthetic-set file")
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(f"{path}: not a regular file (a FIFO, device or socket cannot hold a synthetic set)")
    try:
        verify_seal(path)
    except OSError as e:
        raise FormatError(f"{path}: cannot be read: {one_line(e)[:200]}") from None
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise FormatError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {one_line(e)[:200]}") from None
    try:
        with f:
            _preflight(f, path)
            return _read_open(f, path)
    except FormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError, IndexError,
            json.JSONDecodeError, UnicodeDecodeError, OverflowError, MemoryError) as e:
        raise FormatError(f"{path}: unreadable content ({type(e).__name__}: {one_line(e)[:200]})") from None


def _preflight(f, path: Path) -> None:
    """The structural checks that run before any dataset is read (docs/format.md §5, rule 0).

    A set is self-contained: hard links only (no external or soft links), no external storage, no
    virtual datasets, only the gzip, shuffle and Fletcher-32 filters, numeric or UTF-8 string data.
    Every dataset must store what it declares (all chunks written), decode to at most
    ``MAX_EXPANSION`` times its stored bytes (``MAX_PIXEL_EXPANSION`` for pixel data), and the whole
    file to at most :func:`max_set_bytes`. Then the declared shapes must agree with each other."""

    total, seen = 0, 0
    stack = [("/", f)]
    while stack:
        prefix, group = stack.pop()
        for name in group:
            where = f"{prefix}{name}"
            seen += 1
            if seen > MAX_OBJECTS:
                raise FormatError(f"{path}: more than {MAX_OBJECTS} objects; a synthetic set has a handful")
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise FormatError(f"{path}: '{where}' is an external link to {link.filename}:{link.path}; "
                                  "a synthetic set must be self-contained")
            if isinstance(link, h5py.SoftLink):
                raise FormatError(f"{path}: '{where}' is a soft link to {link.path}; a synthetic set holds "
                                  "its datasets directly")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append((f"{where}/", obj))
            elif isinstance(obj, h5py.Dataset):
                total += _preflight_dataset(obj, where, path)
            else:
                raise FormatError(f"{path}: '{where}' is a {type(obj).__name__}, not a dataset or group")
    limit = max_set_bytes()
    graphs = _shape(f, "graphs/labels")
    objects = int(graphs[0]) * GRAPH_OBJECT_BYTES if graphs else 0   # each graph becomes an object for training
    if total + objects > limit:
        held = f" ({int(graphs[0]):,} graphs at {GRAPH_OBJECT_BYTES:,} bytes each included)" if objects else ""
        raise FormatError(f"{path}: declares {total + objects:,} bytes of data{held}, over the {limit:,}-byte limit "
                          "(CONDENSE_MAX_SET_BYTES raises it)")
    _check_declared_shapes(f, path)


def _preflight_dataset(ds, where: str, path: Path) -> int:
    """One dataset's checks before it is read; returns the bytes it decodes to."""

    if ds.is_virtual:
        raise FormatError(f"{path}: '{where}' is a virtual dataset; a synthetic set must be self-contained")
    if ds.external:
        raise FormatError(f"{path}: '{where}' keeps its data outside the file (external storage in "
                          f"{ds.external[0][0]!r}); a synthetic set must be self-contained")
    dt = ds.dtype
    if not (dt.kind in "biuf" or (dt.kind == "O" and h5py.check_string_dtype(dt) is not None)):
        raise FormatError(f"{path}: '{where}' has data type {dt}; the format stores numbers and UTF-8 strings")
    allowed = DTYPES.get(where.lstrip("/"))
    if allowed is not None and dt.name not in allowed:
        raise FormatError(f"{path}: '{where}' has data type {dt}; the format stores it as {' or '.join(allowed)}")
    if ds.ndim > 4:
        raise FormatError(f"{path}: '{where}' has {ds.ndim} dimensions; no part of a set has more than 4")
    declared = int(math.prod(ds.shape)) * dt.itemsize
    if declared > max_set_bytes():
        raise FormatError(f"{path}: '{where}' declares {'×'.join(map(str, ds.shape))} {dt} ({declared:,} bytes), "
                          f"over the {max_set_bytes():,}-byte limit")
    dcpl = ds.id.get_create_plist()
    for i in range(dcpl.get_nfilters()):
        code = dcpl.get_filter(i)[0]
        if code not in ALLOWED_FILTERS:
            raise FormatError(f"{path}: '{where}' uses HDF5 filter {code}; the format allows only "
                              f"{', '.join(ALLOWED_FILTERS.values())}")
    if declared == 0:
        return 0
    stored = ds.id.get_storage_size()
    if dcpl.get_layout() == h5py.h5d.CHUNKED:
        expected = math.prod(math.ceil(n / c) for n, c in zip(ds.shape, ds.chunks))
        if ds.id.get_num_chunks() != expected:
            raise FormatError(f"{path}: '{where}' declares {expected} chunks but stores "
                              f"{ds.id.get_num_chunks()} (its data was never written)")
    elif stored < declared and dt.kind != "O":
        raise FormatError(f"{path}: '{where}' declares {declared:,} bytes but stores {stored:,}")
    if stored == 0:
        raise FormatError(f"{path}: '{where}' declares {declared:,} bytes but stores none")
    cap = MAX_PIXEL_EXPANSION if where in ("/images", "/compensators/values") else MAX_EXPANSION
    if declared > cap * stored and declared > (1 << 20):
        raise FormatError(f"{path}: '{where}' decodes {stored:,} stored bytes to {declared:,} "
                          f"(×{declared / stored:,.0f}, over the ×{cap} a real set compresses): a compression bomb")
    return declared


def _shape(f, key: str) -> tuple | None:
    obj = f.get(key)
    return tuple(obj.shape) if obj is not None and hasattr(obj, "shape") else None


def _check_declared_shapes(f, path: Path) -> None:
    """Shapes that must agree, read from the metadata only: no array is read, so nothing is
    allocated for a file whose parts do not fit together."""
    problems = []
    x, y = _shape(f, "images"), _shape(f, "labels")
    if x is not None:
        if len(x) != 4:
            problems.append(f"images must be N×C×H×W, got shape {x}")
        elif y is not None and y != (x[0],):
            problems.append(f"labels have shape {y}, expected ({x[0]},) for {x[0]} images")
        else:
            v, b, ib = (_shape(f, f"compensators/{k}") for k in ("values", "batch", "image_batch"))
            if v is not None and (len(v) != 4 or v[1:] != x[1:]):
                problems.append(f"compensators must be K×{'×'.join(map(str, x[1:]))}, got shape {v}")
            elif v is not None and (b != (v[0],) or ib != (x[0],)):
                problems.append("compensators/batch needs one entry per compensator and compensators/image_batch "
                                "one per image")
    sl, order = _shape(f, "soft_labels"), _shape(f, "replay/order")
    if order is not None and (sl is None or len(sl) != 3 or sl[:2] != order or (x is not None and order[1:] != x[:1])):
        problems.append(f"replay/order has shape {order}; it needs one row per replay epoch of soft_labels {sl} "
                        f"and one entry per image")
    g = f.get("graphs")
    if g is not None and hasattr(g, "keys"):
        gx, gei, gy = _shape(g, "x"), _shape(g, "edge_index"), _shape(g, "labels")
        if gx is not None and gei is not None and gy is not None and len(gy) == 1:
            for k, want in (("node_ptr", (gy[0] + 1,)), ("edge_ptr", (gy[0] + 1,)), ("root_mask", gx[:1]),
                            ("node_degree", gx[:1]), ("frequency", gy), ("tree_ptr", (gy[0] + 1,))):
                got = _shape(g, k)
                if got is not None and got != want:
                    problems.append(f"graphs/{k} has shape {got}, expected {want}")
            ea = _shape(g, "edge_attr")
            if ea is not None and len(gei) == 2 and ea[:1] != gei[1:]:
                problems.append(f"graphs/edge_attr has {ea[0]} rows for {gei[1]} edges")
    if problems:
        raise FormatError(f"{path}: {problems[0]}")


def _attr(f, key: str, path: Path, cast, expect: type | None = None):
    """Root attribute ``key`` cast to its type (JSON ones parsed and checked to be ``expect``)."""
    if key not in f.attrs:
        raise FormatError(f"{path}: missing root attribute {key!r}")
    v = f.attrs[key]
    if isinstance(v, np.ndarray):
        if v.shape != ():
            raise FormatError(f"{path}: root attribute {key!r} must be a single value, got an array of shape {v.shape}")
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode()
    try:
        if cast is json.loads:
            out = json.loads(v)
            if expect is not None and not isinstance(out, expect):
                raise FormatError(f"{path}: root attribute {key!r} must be a JSON "
                                  f"{'object' if expect is dict else 'array'}, got {type(out).__name__}")
            return out
        if cast is int and isinstance(v, (float, np.floating)) and not float(v).is_integer():
            raise ValueError
        if cast is str and not isinstance(v, str):
            raise ValueError
        return cast(v)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise FormatError(f"{path}: root attribute {key!r} has an invalid value {str(v)[:60]!r}") from None


def _array(node, key: str, path: Path, prefix: str = "") -> np.ndarray:
    if key not in node:
        raise FormatError(f"{path}: missing dataset '/{prefix}{key}'")
    obj = node[key]
    if not hasattr(obj, "dtype"):
        raise FormatError(f"{path}: '/{prefix}{key}' is not a dataset")
    try:
        return obj[()]
    except OSError as e:
        raise FormatError(f"{path}: '/{prefix}{key}' failed to read (checksum or corruption): {one_line(e)[:200]}") from None


def _read_open(f, path: Path) -> tuple[SyntheticSet, dict]:
    fmt = _attr(f, "format", path, str)
    if fmt != FORMAT:
        raise FormatError(f"{path}: format attribute is {fmt!r}, expected {FORMAT!r}")
    version = _attr(f, "format_version", path, int)
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(f"{path}: unknown format_version {version}; this library reads "
                          f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
    kind = _attr(f, "kind", path, str)
    if kind not in KINDS:
        raise FormatError(f"{path}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    kw: dict[str, Any] = dict(
        kind=kind, method=_attr(f, "method", path, str), ipc=_attr(f, "ipc", path, int),
        num_classes=_attr(f, "num_classes", path, int),
        class_names=tuple(_attr(f, "class_names", path, json.loads, list)),
        source_dataset=_attr(f, "source_dataset", path, str),
        source_fingerprint=_attr(f, "source_fingerprint", path, str),
        seed=_attr(f, "seed", path, int), method_config=_attr(f, "method_config", path, json.loads, dict),
        source_split=_attr(f, "source_split", path, str),
        condense_seconds=_attr(f, "condense_seconds", path, float),
        teacher_seconds=_attr(f, "teacher_seconds", path, float), device=_attr(f, "device", path, str),
        created_utc=_attr(f, "created_utc", path, str), library_version=_attr(f, "library_version", path, str),
        format_version=version, deviations=tuple(_attr(f, "deviations", path, json.loads, list)),
        extra=_attr(f, "extra", path, json.loads, dict), path=path,
    )
    for key in ("preprocessing", "release"):   # version 4 parts, optional
        if key in f.attrs:
            kw[key] = _attr(f, key, path, json.loads, dict)
    if "synthetic_lr" in f.attrs:
        kw["synthetic_lr"] = _attr(f, "synthetic_lr", path, float)
    recorded_bytes = _attr(f, "storage_bytes", path, json.loads, dict)
    if kind == "images":
        ds = f["images"] if "images" in f else None
        kw["images"] = torch.from_numpy(np.ascontiguousarray(_array(f, "images", path)))
        kw["image_encoding"] = str(ds.attrs.get("encoding", ""))
        kw["mean"] = tuple(float(v) for v in np.atleast_1d(ds.attrs.get("mean", [])))
        kw["std"] = tuple(float(v) for v in np.atleast_1d(ds.attrs.get("std", [])))
        kw["labels"] = torch.from_numpy(_array(f, "labels", path))
        if "soft_labels" in f:
            sl = f["soft_labels"]
            kw["soft_labels"] = torch.from_numpy(np.ascontiguousarray(_array(f, "soft_labels", path)))
            kw["soft_label_policy"] = str(sl.attrs.get("policy", ""))
            kw["soft_label_attrs"] = json.loads(sl.attrs.get("attrs_json", "{}"))
        if "replay" in f:
            g = f["replay"]
            if not hasattr(g, "keys"):
                raise FormatError(f"{path}: '/replay' must be a group")
            kw["replay"] = {k: torch.from_numpy(np.ascontiguousarray(_array(g, k, path, "replay/")))
                            for k in _replay.REPLAY_KEYS}
            kw["replay_batch"] = int(g.attrs.get("batch_size", 0))
            made_for = str(g.attrs.get("set_sha256", ""))
            if made_for != _replay.set_digest(kw["images"], kw["labels"]):
                raise FormatError(f"{path}: the replay labels were made for another set (their images and labels "
                                  f"fingerprint {made_for[:12]}… differs from this file's)")
        if "compensators" in f:
            g = f["compensators"]
            if not hasattr(g, "keys"):
                raise FormatError(f"{path}: '/compensators' must be a group")
            kw["compensator_encoding"] = str(g.attrs.get("encoding", ""))
            kw["compensators"] = {k: torch.from_numpy(np.ascontiguousarray(_array(g, k, path, "compensators/")))
                                  for k in COMPENSATOR_KEYS + COMPENSATOR_OPTIONAL
                                  if k in COMPENSATOR_KEYS or k in g}
    elif kind == "subset-schedule":
        ds = f["indices"] if "indices" in f else None
        kw["indices"] = torch.from_numpy(_array(f, "indices", path))
        kw["source_size"] = int(ds.attrs.get("source_size", -1))
        if str(ds.attrs.get("source_fingerprint", "")) != kw["source_fingerprint"]:
            raise FormatError(f"{path}: /indices source_fingerprint differs from the root attribute")
    else:
        if "graphs" not in f or not hasattr(f["graphs"], "keys"):
            raise FormatError(f"{path}: missing group '/graphs'")
        g = f["graphs"]
        parts: dict[str, Any] = {}
        for k in GRAPH_REQUIRED + GRAPH_OPTIONAL:
            if k in GRAPH_REQUIRED or k in g:
                if k == "tree_codes":
                    parts[k] = [c.decode() if isinstance(c, bytes) else str(c)
                                for c in _array(g, k, path, "graphs/")]
                else:
                    parts[k] = torch.from_numpy(np.ascontiguousarray(_array(g, k, path, "graphs/")))
        kw["graphs"] = parts
    s = SyntheticSet(**kw)
    if version < s.lowest_version():   # the constructor raised it to what the parts need; the file must state it
        raise FormatError(f"{path}: format_version {version} cannot hold its parts (they need version "
                          f"{s.lowest_version()}: docs/format.md §6)")
    return s, recorded_bytes

