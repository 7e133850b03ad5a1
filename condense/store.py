"""The self-describing HDF5 synthetic-set format (see ``docs/format.md``).

``save`` writes atomically (temporary file, fsync, rename). ``load`` and ``validate`` check every
structural rule of the spec and raise :class:`FormatError` -- one line naming the file and the
problem -- for anything else: a truncated or non-HDF5 file, a missing key, an unknown version, a
shape or label mismatch, NaN/Inf values, out-of-range labels or indices, a failed checksum.
"""
from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import replay as _replay
from ._paths import atomic_write
from ._version import __version__

FORMAT = "condense.synthetic"
FORMAT_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)   # version 2 adds the optional compensators part (INFER), 3 the replay part
KINDS = ("images", "subset-schedule", "graphs")
IMAGE_ENCODINGS = ("uint8", "unit", "standardized")
SOFT_POLICIES = ("static", "replay")
GRAPH_REQUIRED = ("x", "edge_index", "node_ptr", "edge_ptr", "labels")
GRAPH_OPTIONAL = ("edge_attr", "root_mask", "node_degree", "frequency", "tree_codes", "tree_ptr")
COMPENSATOR_KEYS = ("values", "batch", "image_batch")
COMPENSATOR_OPTIONAL = ("scale", "offset", "teacher")
COMPENSATOR_ENCODINGS = ("affine-uint8", "standardized")
USERBLOCK = 512
SEAL_MAGIC = b"condense.synthetic integrity\n"
_HASH_CHUNK = 1 << 20

# Bounds a reader checks before it allocates anything (docs/format.md §5).
MAX_IPC = 10_000_000
MAX_CLASSES = 100_000
MAX_OBJECTS = 64                   # groups + datasets in one file (a set has at most 15)
MAX_EXPANSION = 1100               # decoded bytes per stored byte: deflate's own limit is about 1032
MAX_PIXEL_EXPANSION = 64           # pixel data (images, compensators) that compresses more is not images
ALLOWED_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32"}
TRAINING_SPLITS = ("train",)


def max_set_bytes() -> int:
    """The most bytes a set may decode to, its composed instances included (``$CONDENSE_MAX_SET_BYTES``,
    default 8 GiB): a crafted file cannot make a reader allocate more."""
    try:
        return int(os.environ.get("CONDENSE_MAX_SET_BYTES", "") or 8 << 30)
    except ValueError:
        return 8 << 30


class FormatError(ValueError):
    """A synthetic-set file breaks the format: the message names the file and the problem."""


# ----------------------------------------------------------------------------- the object


@dataclass(eq=False)
class SyntheticSet:
    """A condensed set in memory: its parts (tensors) and its full metadata.

    ``images`` are kept in their stored encoding (``image_encoding``: ``uint8`` pixels, ``unit``
    floats in [0, 1], or ``standardized`` by ``mean``/``std``); :meth:`dataset` yields standardized
    float images ready for a model.
    """

    kind: str
    method: str
    ipc: int
    num_classes: int
    class_names: tuple[str, ...]
    source_dataset: str
    source_fingerprint: str
    seed: int
    method_config: dict = field(default_factory=dict)
    source_split: str = "train"
    # images kind
    images: torch.Tensor | None = None
    image_encoding: str = "uint8"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    labels: torch.Tensor | None = None
    soft_labels: torch.Tensor | None = None
    soft_label_policy: str | None = None
    soft_label_attrs: dict = field(default_factory=dict)
    compensators: dict[str, torch.Tensor] | None = None   # INFER's universal feature compensators
    compensator_encoding: str = "affine-uint8"
    replay: dict[str, torch.Tensor] | None = None         # per-epoch views of replay soft labels (CV-DD)
    replay_batch: int = 0                                  # the replay's batch size (CutMix pairs within it)
    # subset-schedule kind
    indices: torch.Tensor | None = None
    source_size: int | None = None
    # graphs kind
    graphs: dict[str, Any] | None = None
    # provenance
    condense_seconds: float = 0.0
    teacher_seconds: float = 0.0
    device: str = "cpu"
    created_utc: str = ""
    library_version: str = __version__
    format_version: int = 0       # 0: the lowest version that describes the set (3 with replay, else 2)
    deviations: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        self.class_names = tuple(str(c) for c in self.class_names)
        self.deviations = tuple(self.deviations)
        if not self.format_version or (self.replay is not None and self.format_version < FORMAT_VERSION):
            self.format_version = FORMAT_VERSION if self.replay is not None else 2
        if not self.created_utc:
            self.created_utc = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def __len__(self) -> int:
        if self.kind == "images":
            return int(self.labels.shape[0])
        if self.kind == "subset-schedule":
            return int(self.indices.shape[1])
        return int(self.graphs["labels"].shape[0])

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return (f"SyntheticSet(kind={self.kind!r}, method={self.method!r}, ipc={self.ipc}, "
                f"source={self.source_dataset!r}, n={len(self)}, bytes={self.storage_bytes['total']}{where})")

    # ------------------------------------------------------------------ storage accounting

    def parts(self) -> dict[str, dict[str, np.ndarray]]:
        """The arrays that make up each counted part, in their stored dtypes."""
        out: dict[str, dict[str, np.ndarray]] = {}
        if self.images is not None:
            out["images"] = {"images": _np(self.images)}
        if self.labels is not None:
            out["labels"] = {"labels": _np(self.labels)}
        if self.soft_labels is not None:
            out["soft_labels"] = {"soft_labels": _np(self.soft_labels)}
        if self.compensators is not None:
            out["compensators"] = {k: _np(v) for k, v in self.compensators.items()}
        if self.replay is not None:
            out["replay"] = {k: _np(v) for k, v in self.replay.items()}
        if self.indices is not None:
            out["indices"] = {"indices": _np(self.indices)}
        if self.graphs is not None:
            out["graphs"] = {k: v for k, v in ((k, _graph_array(v)) for k, v in self.graphs.items())}
        return out

    @property
    def storage_bytes(self) -> dict[str, int]:
        """Bytes per part (uncompressed, stored dtype) and their ``total``."""
        sizes = {name: int(sum(a.nbytes for a in arrays.values())) for name, arrays in self.parts().items()}
        sizes["total"] = int(sum(sizes.values()))
        return sizes

    # ------------------------------------------------------------------ consumption

    def float_images(self) -> torch.Tensor:
        """Images standardized by the source mean and std (the models' input space)."""
        if self.images is None:
            raise ValueError(f"a {self.kind!r} set has no images")
        x = self.images
        if self.image_encoding == "standardized":
            return x.float()
        x = x.float() / 255.0 if self.image_encoding == "uint8" else x.float()
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x - mean) / std

    def compensator_values(self) -> torch.Tensor:
        """The compensators decoded to the models' input space (K×C×H×W float)."""
        c = self.compensators
        if self.compensator_encoding == "affine-uint8":
            return c["offset"].float().view(-1, 1, 1, 1) + c["scale"].float().view(-1, 1, 1, 1) * c["values"].float()
        return c["values"].float()

    def _init_batches(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images sorted by init batch (stable: image order within a batch), and for each
        compensator where its batch starts in that order and how many images it holds."""
        ib, b = self.compensators["image_batch"].long(), self.compensators["batch"].long()
        sorted_ib, perm = torch.sort(ib, stable=True)
        start = torch.searchsorted(sorted_ib, b, right=False)
        return perm, start, torch.searchsorted(sorted_ib, b, right=True) - start

    def instance_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(image index, compensator index) of every composed instance, in the format's order:
        compensator by compensator, and within one, the images of its init batch in image order."""
        perm, start, count = self._init_batches()
        k_idx = torch.repeat_interleave(torch.arange(count.numel()), count)
        offset = torch.arange(int(count.sum())) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        return perm[torch.repeat_interleave(start, count) + offset], k_idx

    def instances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training instances (standardized float images) and hard labels.

        Plain sets: their images. With compensators (INFER): every image alone, then every image
        plus each compensator of its batch, clipped to the valid pixel range.
        """
        x, y = self.float_images(), self.labels.long()
        if self.compensators is None:
            return x, y
        i_idx, k_idx = self.instance_pairs()
        lo = ((0.0 - torch.tensor(self.mean)) / torch.tensor(self.std)).view(1, -1, 1, 1)
        hi = ((1.0 - torch.tensor(self.mean)) / torch.tensor(self.std)).view(1, -1, 1, 1)
        composed = torch.maximum(torch.minimum(x[i_idx] + self.compensator_values()[k_idx], hi), lo)
        return torch.cat([x, composed]), torch.cat([y, y[i_idx]])

    def num_instances(self) -> int:
        """Training instances, counted without composing them: images, plus per compensator the
        images of its init batch."""
        n = int(self.labels.shape[0])
        return n if self.compensators is None else n + int(self._init_batches()[2].sum())

    @property
    def replay_epochs(self) -> int:
        """Epochs of stored replay views (0: none)."""
        return int(self.soft_labels.shape[0]) if self.soft_label_policy == "replay" else 0

    def replay_views(self, epoch: int, positions: torch.Tensor | None = None,
                     images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Epoch ``epoch``'s stored views at ``positions`` (default: all, in visiting order), with the
        hard label of each view's own image and its stored logits (:mod:`condense.replay`).
        ``images``: the standardized images on a device (default: :meth:`float_images`)."""
        if self.soft_label_policy != "replay":
            raise ValueError(f"{self.path or 'this set'}: has no replay soft labels")
        if not isinstance(epoch, int) or not 0 <= epoch < self.replay_epochs:
            raise ValueError(f"{self.path or 'this set'}: replay epoch must be in [0, {self.replay_epochs}), got {epoch!r}")
        x = self.float_images() if images is None else images
        pos = torch.arange(len(self)) if positions is None else positions.long().cpu()
        v = _replay.views(x, self.replay, epoch, pos, self.replay_batch)
        y = self.labels.long()[self.replay["order"][epoch].long()[pos]]
        return v, y, self.soft_labels[epoch][pos]

    def attach_replay(self, other: "SyntheticSet") -> "SyntheticSet":
        """This set with the replay soft labels of ``other`` (e.g. a separate replay file), refused
        unless they were made for exactly these images and labels."""
        if other.soft_label_policy != "replay" or other.replay is None:
            raise FormatError(f"{other.path or 'the other set'}: holds no replay soft labels")
        mine, theirs = _replay.set_digest(self.images, self.labels), _replay.set_digest(other.images, other.labels)
        if mine != theirs:
            raise FormatError(f"{other.path or 'the other set'}: replay labels were made for another set (images and "
                              f"labels fingerprint {theirs[:12]}…, this set {mine[:12]}…)")
        return replace(self, format_version=FORMAT_VERSION, soft_labels=other.soft_labels, soft_label_policy="replay",
                       soft_label_attrs=dict(other.soft_label_attrs), replay=dict(other.replay),
                       replay_batch=other.replay_batch)

    def dataset(self, transform: Callable | None = None, epoch: int | None = None, hard_only: bool = False):
        """A torch ``Dataset``: (image, label[, soft label]) for images, ``Data`` for graphs.

        A set with replay soft labels gives epoch ``epoch``'s stored augmented views, in visiting order,
        with their logits (``epoch`` is then required: its labels belong to those views only);
        ``hard_only=True`` gives the plain images with hard labels instead."""
        if self.kind == "images":
            if self.soft_label_policy == "replay" and not hard_only:
                if epoch is None:
                    raise ValueError(f"{self.path or 'this set'}: its soft labels are per epoch "
                                     f"({self.replay_epochs} replay epochs): pass epoch=e for that epoch's stored "
                                     "views and logits, or hard_only=True for the images with hard labels")
                x, y, soft = self.replay_views(epoch)
                return SyntheticImageDataset(x, y, soft, transform)
            if epoch is not None and not hard_only:
                raise ValueError(f"{self.path or 'this set'}: has no replay soft labels; epoch applies only to them")
            x, y = self.instances()
            soft = self.soft_labels if self.soft_label_policy == "static" and not hard_only else None
            return SyntheticImageDataset(x, y, soft, transform)
        if self.kind == "graphs":
            return _graph_data_list(self.graphs)
        raise ValueError("a subset-schedule set indexes its source: call .resolve(source) for per-round datasets")

    def resolve(self, source) -> "ResolvedSchedule":
        """Bind a subset-schedule to its source dataset, refusing a fingerprint mismatch."""
        if self.kind != "subset-schedule":
            raise ValueError(f"resolve() applies to subset-schedule sets, not {self.kind!r}")
        got = getattr(source, "fingerprint", None)
        if got != self.source_fingerprint:
            raise FormatError(
                f"{self.path or '<memory>'}: schedule was made for source fingerprint "
                f"{self.source_fingerprint[:12]}… ({self.source_dataset}/{self.source_split}) but the given "
                f"source has {str(got)[:12]}…; pass the same dataset split")
        if len(source) != self.source_size:
            raise FormatError(f"{self.path or '<memory>'}: source has {len(source)} items, schedule expects "
                              f"{self.source_size}")
        return ResolvedSchedule(self.indices, source)

    def metadata(self) -> dict:
        """Everything but the arrays, as plain JSON-able values (what the root attributes hold)."""
        return {
            "format": FORMAT, "format_version": self.format_version, "kind": self.kind,
            "method": self.method, "method_config": self.method_config, "seed": self.seed,
            "ipc": self.ipc, "num_classes": self.num_classes, "class_names": list(self.class_names),
            "source_dataset": self.source_dataset, "source_split": self.source_split,
            "source_fingerprint": self.source_fingerprint, "created_utc": self.created_utc,
            "library_version": self.library_version, "condense_seconds": self.condense_seconds,
            "teacher_seconds": self.teacher_seconds, "device": self.device,
            "storage_bytes": self.storage_bytes, "deviations": list(self.deviations), "extra": self.extra,
        }

    def with_meta(self, **kw) -> "SyntheticSet":
        return replace(self, **kw)


class SyntheticImageDataset(torch.utils.data.Dataset):
    """Standardized float images with hard labels and, when stored statically, soft labels."""

    def __init__(self, images, labels, soft_labels=None, transform=None):
        self.images, self.labels, self.soft_labels, self.transform = images, labels, soft_labels, transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i):
        x = self.images[i]
        if self.transform is not None:
            x = self.transform(x)
        if self.soft_labels is None:
            return x, self.labels[i]
        return x, self.labels[i], self.soft_labels[i].float()

    def tensors(self):
        return self.images, self.labels


class ResolvedSchedule:
    """Per-round datasets of a subset-schedule: ``sched[r]`` is round r's subset of the source."""

    def __init__(self, indices: torch.Tensor, source):
        self.indices, self.source = indices.long(), source

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, r: int):
        return self.source.subset(self.indices[r], rule={"round": int(r)})


# ----------------------------------------------------------------------------- writing


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _graph_array(v) -> np.ndarray:
    if isinstance(v, (list, tuple)):  # tree codes: count UTF-8 bytes as their storage
        return np.frombuffer("\0".join(map(str, v)).encode(), dtype=np.uint8)
    return _np(v)


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
    import h5py

    path = Path(path)
    problems = _check_set(synset)
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
    import hashlib

    h = hashlib.sha256()
    fh.seek(USERBLOCK)
    for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
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


def _verify_seal(path: Path) -> None:
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
    if s.kind == "images":
        _write_array(f, "images", _np(s.images), encoding=s.image_encoding,
                     mean=np.asarray(s.mean, np.float64), std=np.asarray(s.std, np.float64))
        _write_array(f, "labels", _np(s.labels).astype(np.int64))
        if s.soft_labels is not None:
            _write_array(f, "soft_labels", _np(s.soft_labels), policy=s.soft_label_policy,
                         attrs_json=json.dumps(s.soft_label_attrs, sort_keys=True))
        if s.replay is not None:
            g = f.create_group("replay")
            g.attrs["batch_size"] = int(s.replay_batch)
            g.attrs["set_sha256"] = _replay.set_digest(s.images, s.labels)
            for k in _replay.REPLAY_KEYS:
                _write_array(g, k, _np(s.replay[k]))
        if s.compensators is not None:
            g = f.create_group("compensators")
            g.attrs["encoding"] = s.compensator_encoding
            g.attrs["pairing"] = "instances: every image alone, then per compensator k the images i with image_batch[i] == batch[k], composed as clip(x_i + u_k)"
            for k, v in s.compensators.items():
                _write_array(g, k, _np(v))
    elif s.kind == "subset-schedule":
        _write_array(f, "indices", _np(s.indices), source_size=int(s.source_size),
                     source_fingerprint=s.source_fingerprint)
    else:
        g = f.create_group("graphs")
        for k, v in s.graphs.items():
            if k == "tree_codes":
                import h5py

                g.create_dataset(k, data=np.array([str(c) for c in v], dtype=object),
                                 dtype=h5py.string_dtype("utf-8"))
            else:
                _write_array(g, k, _np(v))


# ----------------------------------------------------------------------------- reading


def load(path: str | os.PathLike) -> SyntheticSet:
    """Read and fully validate a synthetic-set file. Raises :class:`FormatError` on any problem."""
    path = Path(path)
    s, recorded_bytes = _read(path)
    problems = _check_set(s)
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
    import h5py

    try:
        st = path.stat()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except OSError as e:
        raise FormatError(f"{path}: cannot be read: {_short(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FormatError(f"{path}: is a directory, not a synthetic-set file")
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(f"{path}: not a regular file (a FIFO, device or socket cannot hold a synthetic set)")
    try:
        _verify_seal(path)
    except OSError as e:
        raise FormatError(f"{path}: cannot be read: {_short(e)}") from None
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise FormatError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {_short(e)}") from None
    try:
        with f:
            _preflight(f, path)
            return _read_open(f, path)
    except FormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError, IndexError,
            json.JSONDecodeError, UnicodeDecodeError, OverflowError, MemoryError) as e:
        raise FormatError(f"{path}: unreadable content ({type(e).__name__}: {_short(e)})") from None


def _preflight(f, path: Path) -> None:
    """The structural checks that run before any dataset is read (docs/format.md §5, rule 0).

    A set is self-contained: hard links only (no external or soft links), no external storage, no
    virtual datasets, only the gzip, shuffle and Fletcher-32 filters, numeric or UTF-8 string data.
    Every dataset must store what it declares (all chunks written), decode to at most
    ``MAX_EXPANSION`` times its stored bytes (``MAX_PIXEL_EXPANSION`` for pixel data), and the whole
    file to at most :func:`max_set_bytes`. Then the declared shapes must agree with each other."""
    import h5py

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
    if total > limit:
        raise FormatError(f"{path}: declares {total:,} bytes of data, over the {limit:,}-byte limit "
                          "(CONDENSE_MAX_SET_BYTES raises it)")
    _check_declared_shapes(f, path)


def _preflight_dataset(ds, where: str, path: Path) -> int:
    """One dataset's checks before it is read; returns the bytes it decodes to."""
    import h5py

    if ds.is_virtual:
        raise FormatError(f"{path}: '{where}' is a virtual dataset; a synthetic set must be self-contained")
    if ds.external:
        raise FormatError(f"{path}: '{where}' keeps its data outside the file (external storage in "
                          f"{ds.external[0][0]!r}); a synthetic set must be self-contained")
    dt = ds.dtype
    if not (dt.kind in "biuf" or (dt.kind == "O" and h5py.check_string_dtype(dt) is not None)):
        raise FormatError(f"{path}: '{where}' has data type {dt}; the format stores numbers and UTF-8 strings")
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


def _short(e: BaseException) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


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
        raise FormatError(f"{path}: '/{prefix}{key}' failed to read (checksum or corruption): {_short(e)}") from None


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
    return SyntheticSet(**kw), recorded_bytes


# ----------------------------------------------------------------------------- validation


def _finite(a: torch.Tensor) -> bool:
    return a.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool) or \
        bool(torch.isfinite(a).all())


def _check_set(s: SyntheticSet) -> list[str]:
    """Every rule of the spec that an in-memory set must satisfy; returns the problems found."""
    p = _check_meta(s)
    if p:
        return p
    if s.kind == "images":
        p += _check_images(s)
    elif s.kind == "subset-schedule":
        p += _check_schedule(s)
    else:
        p += _check_graphs(s)
    return p


def _nonneg_finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _check_meta(s: SyntheticSet) -> list[str]:
    """Metadata ranges (§5 rule 3): what a re-sealed edit could otherwise slip into a result."""
    if not isinstance(s.ipc, int) or not 0 <= s.ipc <= MAX_IPC:
        return [f"ipc must be an integer in [0, {MAX_IPC:,}], got {s.ipc!r}"]
    if not 1 <= s.num_classes <= MAX_CLASSES or len(s.class_names) != s.num_classes:
        return [f"num_classes={s.num_classes} but {len(s.class_names)} class_names"]
    if not isinstance(s.seed, int) or not 0 <= s.seed < 2 ** 63:
        return [f"seed must be an integer in [0, 2^63), got {s.seed!r}"]
    for name in ("condense_seconds", "teacher_seconds"):
        if not _nonneg_finite(getattr(s, name)):
            return [f"{name} must be a finite number >= 0, got {getattr(s, name)!r}"]
    if not isinstance(s.extra, dict) or not isinstance(s.method_config, dict):
        return ["extra and method_config must be JSON objects"]
    if s.teacher_seconds > s.condense_seconds * (1 + 1e-9) + 1e-9:
        return [f"teacher_seconds ({s.teacher_seconds:g}) exceed condense_seconds ({s.condense_seconds:g}), which "
                "include them"]
    cpu, tcpu = s.extra.get("condense_cpu_seconds"), s.extra.get("teacher_cpu_seconds")
    for name, v in (("condense_cpu_seconds", cpu), ("teacher_cpu_seconds", tcpu)):
        if v is not None and not _nonneg_finite(v):
            return [f"extra.{name} must be a finite number >= 0 (or null: not measured), got {v!r}"]
    if cpu is not None and tcpu is not None and tcpu > cpu * (1 + 1e-9) + 1e-9:
        return [f"extra.teacher_cpu_seconds ({tcpu:g}) exceed extra.condense_cpu_seconds ({cpu:g}), which "
                "include them"]
    if not all(isinstance(d, str) for d in s.deviations):
        return ["deviations must be a list of strings"]
    if s.source_split not in TRAINING_SPLITS:
        return [f"source_split is {s.source_split!r}: a set is condensed from a training split "
                f"({', '.join(TRAINING_SPLITS)}), never from val or test"]
    return []


def _check_labels(labels, n_expected: int | None, num_classes: int, where: str) -> list[str]:
    if labels is None:
        return [f"missing {where}"]
    if labels.ndim != 1:
        return [f"{where} must be 1-D, got shape {tuple(labels.shape)}"]
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        return [f"{where} must be integers, got {labels.dtype}"]
    if n_expected is not None and labels.shape[0] != n_expected:
        return [f"{where} has {labels.shape[0]} entries but there are {n_expected} items"]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        return [f"{where} out of range [0, {num_classes}): min {int(labels.min())}, max {int(labels.max())}"]
    return []


def _check_images(s: SyntheticSet) -> list[str]:
    x = s.images
    if x is None:
        return ["missing images"]
    if x.ndim != 4:
        return [f"images must be N×C×H×W, got shape {tuple(x.shape)}"]
    if s.image_encoding not in IMAGE_ENCODINGS:
        return [f"unknown image encoding {s.image_encoding!r}"]
    if s.image_encoding == "uint8" and x.dtype != torch.uint8:
        return [f"uint8-encoded images stored as {x.dtype}"]
    if s.image_encoding != "uint8" and x.dtype not in (torch.float16, torch.float32):
        return [f"{s.image_encoding} images must be float16 or float32, got {x.dtype}"]
    if len(s.mean) != x.shape[1] or len(s.std) != x.shape[1]:
        return [f"mean/std have {len(s.mean)}/{len(s.std)} channels, images have {x.shape[1]}"]
    if not all(0.0 <= v <= 1.0 for v in s.mean) or not all(1e-4 <= v <= 1.0 for v in s.std):
        return [f"mean must lie in [0, 1] and std in [1e-4, 1] (pixel statistics), got mean {list(s.mean)} "
                f"and std {list(s.std)}"]
    if not _finite(x):
        return ["images contain NaN or Inf values"]
    if s.image_encoding != "uint8" and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if s.image_encoding == "unit" and (lo < -1e-3 or hi > 1 + 1e-3):
            return [f"unit-encoded images must lie in [0, 1], found [{lo:g}, {hi:g}]"]
        if s.image_encoding == "standardized":
            m, sd = torch.tensor(s.mean).view(1, -1, 1, 1), torch.tensor(s.std).view(1, -1, 1, 1)
            pix = x.float() * sd + m
            if float(pix.min()) < -0.01 or float(pix.max()) > 1.01:
                return ["standardized images map to pixels outside [0, 1]"]
    p = _check_labels(s.labels, x.shape[0], s.num_classes, "labels")
    if not p and s.compensators is not None:
        p = _check_compensators(s)
    p = p or _check_budget(s)
    if p:
        return p
    n_inst = s.num_instances()
    inst_bytes = n_inst * int(math.prod(x.shape[1:])) * 4
    if inst_bytes > max_set_bytes():
        return [f"{n_inst:,} training instances take {inst_bytes:,} bytes as floats, over the "
                f"{max_set_bytes():,}-byte limit (CONDENSE_MAX_SET_BYTES)"]
    if s.soft_labels is not None:
        sl = s.soft_labels
        if s.soft_label_policy not in SOFT_POLICIES:
            p.append(f"unknown soft-label policy {s.soft_label_policy!r}")
        elif s.soft_label_policy == "static" and tuple(sl.shape) != (n_inst, s.num_classes):
            p.append(f"static soft_labels must be {n_inst}×{s.num_classes} (one row per instance), "
                     f"got {tuple(sl.shape)}")
        elif s.soft_label_policy == "replay" and s.replay is None:
            p.append("replay soft_labels need the /replay views they label")
        elif s.soft_label_policy == "replay" and s.compensators is not None:
            p.append("replay soft_labels label a set's own images; a set with compensators stores static ones")
        elif s.soft_label_policy == "replay":
            p.extend(_replay.check(s.replay, sl, n_inst, s.num_classes, int(s.images.shape[-2]),
                                   int(s.images.shape[-1]), s.replay_batch)[:1])
        if not p and (not sl.dtype.is_floating_point or not _finite(sl)):
            p.append("soft_labels must be finite floats")
    if s.replay is not None and s.soft_label_policy != "replay":
        p.append("a /replay part without replay soft labels")
    return p


def _check_budget(s: SyntheticSet) -> list[str]:
    """IPC against the counts: at most ``ipc`` images of any class, and images plus compensators
    within the ``ipc × C`` image slots of the budget; ``ipc = 0`` (the whole split) has no slots to share."""
    k = 0 if s.compensators is None else int(s.compensators["values"].shape[0])
    if s.ipc == 0:
        return ["ipc 0 (the whole split) cannot carry compensators"] if k else []
    counts = torch.bincount(s.labels.long(), minlength=s.num_classes)
    if int(counts.max()) > s.ipc:
        c = int(counts.argmax())
        return [f"ipc is {s.ipc} but class {c} ({s.class_names[c]}) has {int(counts[c])} images"]
    if int(counts.sum()) + k > s.ipc * s.num_classes:
        return [f"{int(counts.sum())} images and {k} compensators exceed the budget of ipc × classes = "
                f"{s.ipc} × {s.num_classes} = {s.ipc * s.num_classes} image slots"]
    return []


def _check_compensators(s: SyntheticSet) -> list[str]:
    c, x = s.compensators, s.images
    if s.format_version < 2:
        return ["compensators need format_version 2"]
    missing = [k for k in COMPENSATOR_KEYS if k not in c]
    if missing:
        return [f"compensators lack {', '.join(missing)}"]
    if s.compensator_encoding not in COMPENSATOR_ENCODINGS:
        return [f"unknown compensator encoding {s.compensator_encoding!r}"]
    v, b, ib = c["values"], c["batch"], c["image_batch"]
    if v.ndim != 4 or tuple(v.shape[1:]) != tuple(x.shape[1:]):
        return [f"compensators must be K×{'×'.join(map(str, x.shape[1:]))}, got {tuple(v.shape)}"]
    if tuple(b.shape) != (v.shape[0],) or tuple(ib.shape) != (x.shape[0],):
        return ["compensators/batch needs one entry per compensator and compensators/image_batch one per image"]
    if b.dtype.is_floating_point or ib.dtype.is_floating_point:
        return ["compensator batch indices must be integers"]
    if s.compensator_encoding == "affine-uint8":
        if v.dtype != torch.uint8 or "scale" not in c or "offset" not in c:
            return ["affine-uint8 compensators need uint8 values with per-compensator scale and offset"]
        if c["scale"].shape != b.shape or c["offset"].shape != b.shape or not (
                _finite(c["scale"]) and _finite(c["offset"])):
            return ["compensator scale/offset need one finite value per compensator"]
        if b.numel() and (bool((c["scale"] < 0).any()) or float(c["scale"].max()) * 255 > 1e4
                          or float(c["offset"].abs().max()) > 1e4):
            return ["compensator scale must be >= 0 and scale·255 and |offset| at most 1e4"]
    elif not v.dtype.is_floating_point or not _finite(v):
        return ["standardized compensators must be finite floats"]
    return _check_pairing(s)


def _check_pairing(s: SyntheticSet) -> list[str]:
    """INFER's pairing (§2.1): an init batch holds at most one image of each class, a compensator's
    batch holds images, and each teacher gives a batch at most one compensator (``teacher`` indexes
    ``method_config.teachers``). These bound the composed instances by images × teachers."""
    c = s.compensators
    b, ib = c["batch"].long(), c["image_batch"].long()
    if ib.numel():
        pairs = torch.unique(torch.stack([ib, s.labels.long()], 1), dim=0)
        if pairs.shape[0] != ib.numel():
            return ["an init batch (compensators/image_batch) holds two images of one class"]
    if b.numel() and not bool(torch.isin(b, ib).all()):
        return ["a compensator's batch holds no image"]
    teachers = s.method_config.get("teachers")
    n_teachers = len(teachers) if isinstance(teachers, list) and teachers else None
    t = c.get("teacher")
    if t is not None:
        if t.shape != b.shape or t.dtype.is_floating_point:
            return ["compensators/teacher needs one integer per compensator"]
        hi = n_teachers if n_teachers is not None else b.numel()
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= hi):
            return [f"compensators/teacher out of range [0, {hi}) (method_config.teachers)"]
        if torch.unique(torch.stack([b, t.long()], 1), dim=0).shape[0] != b.numel():
            return ["a teacher gives one init batch two compensators"]
    elif n_teachers is not None and b.numel():
        if int(torch.unique(b, return_counts=True)[1].max()) > n_teachers:
            return [f"an init batch has more compensators than the {n_teachers} teachers"]
    return []


def _check_schedule(s: SyntheticSet) -> list[str]:
    idx = s.indices
    if idx is None:
        return ["missing indices"]
    if idx.ndim != 2:
        return [f"indices must be rounds×n, got shape {tuple(idx.shape)}"]
    if idx.dtype.is_floating_point or idx.dtype == torch.bool:
        return [f"indices must be integers, got {idx.dtype}"]
    if s.source_size is None or not 1 <= s.source_size <= 1 << 40:
        return ["indices need a positive source_size"]
    if idx.shape[0] < 1 or idx.shape[1] < 1 or idx.shape[1] > s.source_size:
        return [f"indices must hold at least one round of 1..source_size ({s.source_size}) items, "
                f"got shape {tuple(idx.shape)}"]
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= s.source_size):
        return [f"indices out of range [0, {s.source_size})"]
    if not s.source_fingerprint:
        return ["a subset-schedule needs its source_fingerprint"]
    return []


def _check_graphs(s: SyntheticSet) -> list[str]:
    g = s.graphs
    if g is None:
        return ["missing graphs"]
    missing = [k for k in GRAPH_REQUIRED if k not in g]
    if missing:
        return [f"graphs lack {', '.join(missing)}"]
    x, ei, nptr, eptr, y = (g[k] for k in GRAPH_REQUIRED)
    if x.ndim != 2 or ei.ndim != 2 or ei.shape[0] != 2:
        return [f"graphs need x N×F and edge_index 2×E, got {tuple(x.shape)} and {tuple(ei.shape)}"]
    n_graphs = y.shape[0] if y.ndim == 1 else -1
    for name, ptr, total in (("node_ptr", nptr, x.shape[0]), ("edge_ptr", eptr, ei.shape[1])):
        if ptr.ndim != 1 or ptr.shape[0] != n_graphs + 1 or int(ptr[0]) != 0 or int(ptr[-1]) != total \
                or bool((ptr[1:] < ptr[:-1]).any()):
            return [f"graphs/{name} must rise from 0 to {total} over {n_graphs} graphs"]
    if not _finite(x):
        return ["graphs/x contains NaN or Inf values"]
    if ei.numel():
        sizes = (nptr[1:] - nptr[:-1])
        per_edge = torch.repeat_interleave(sizes, (eptr[1:] - eptr[:-1]))
        if int(ei.min()) < 0 or bool((ei >= per_edge.unsqueeze(0)).any()):
            return ["graphs/edge_index refers to nodes outside its graph (indices are local per graph)"]
    if "edge_attr" in g and (g["edge_attr"].shape[0] != ei.shape[1] or not _finite(g["edge_attr"])):
        return ["graphs/edge_attr must have one finite row per edge"]
    if "root_mask" in g and tuple(g["root_mask"].shape) != (x.shape[0],):
        return ["graphs/root_mask must have one entry per node"]
    if "node_degree" in g and (tuple(g["node_degree"].shape) != (x.shape[0],) or g["node_degree"].dtype.is_floating_point
                               or g["node_degree"].dtype == torch.bool or bool((g["node_degree"] < 0).any())):
        return ["graphs/node_degree must have one non-negative integer per node"]
    if "frequency" in g and (tuple(g["frequency"].shape) != (n_graphs,) or not _finite(g["frequency"])):
        return ["graphs/frequency must have one finite entry per graph"]
    if ("tree_codes" in g) != ("tree_ptr" in g):
        return ["graphs/tree_codes and graphs/tree_ptr come together"]
    if "tree_ptr" in g:
        tp = g["tree_ptr"]
        if tp.ndim != 1 or tp.shape[0] != n_graphs + 1 or int(tp[-1]) != len(g["tree_codes"]):
            return ["graphs/tree_ptr must index tree_codes per graph"]
    return _check_labels(y, None, s.num_classes, "graphs/labels")


def _graph_data_list(g: dict) -> list:
    from torch_geometric.data import Data

    out = []
    nptr, eptr = g["node_ptr"].tolist(), g["edge_ptr"].tolist()
    for i in range(len(nptr) - 1):
        a, b, c, d = nptr[i], nptr[i + 1], eptr[i], eptr[i + 1]
        item = Data(x=g["x"][a:b].float(), edge_index=g["edge_index"][:, c:d].long(), y=g["labels"][i:i + 1].long())
        if "edge_attr" in g:
            item.edge_attr = g["edge_attr"][c:d].float()
        if "root_mask" in g:
            item.root_mask = g["root_mask"][a:b].bool()
        if "node_degree" in g:
            item.node_degree = g["node_degree"][a:b].long()
        if "frequency" in g:
            item.frequency = g["frequency"][i:i + 1].float()
        out.append(item)
    return out


def pack_graphs(graphs: list, **extra) -> dict[str, Any]:
    """Pack a list of torch_geometric ``Data`` into the ``graphs`` part's flat arrays."""
    x = torch.cat([d.x.float() for d in graphs]) if graphs else torch.zeros(0, 0)
    ei = torch.cat([d.edge_index for d in graphs], 1) if graphs else torch.zeros(2, 0, dtype=torch.long)
    nptr = torch.tensor([0] + [d.num_nodes for d in graphs]).cumsum(0)
    eptr = torch.tensor([0] + [d.edge_index.shape[1] for d in graphs]).cumsum(0)
    out: dict[str, Any] = {"x": x.float(), "edge_index": ei.long(), "node_ptr": nptr.long(),
                           "edge_ptr": eptr.long(),
                           "labels": torch.tensor([int(d.y) for d in graphs], dtype=torch.long)}
    if graphs and getattr(graphs[0], "edge_attr", None) is not None:
        out["edge_attr"] = torch.cat([d.edge_attr.float() for d in graphs])
    out.update(extra)
    return out
