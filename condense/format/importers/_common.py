"""What every importer shares: safe loading of ``.pt`` files, the provenance of each input file, the
checks against the named dataset, and the set they build.

Every check runs before anything is written, and each failure is one line naming the file."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch

from ...data import load_dataset
from ..spec import HASH_CHUNK, FormatError
from ..synset import SyntheticSet

#: NumPy scalars that releases pickle beside their tensors (DC's accuracies, FKD's CutMix λ and box):
#: rebuilt from their bytes, never by running code; everything else a pickle names is refused.
NUMPY_SAFE = [np._core.multiarray.scalar, (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType,
              np.dtypes.Int64DType, np.dtypes.Int32DType, np.dtypes.BoolDType]


def load_pt(path: Path):
    """``torch.load(path, weights_only=True)`` (tensors, containers, numbers, NumPy scalars): a file
    that needs more -- a pickle that would run code -- is refused in one line naming it."""
    try:
        with torch.serialization.safe_globals(NUMPY_SAFE):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FormatError(f"{path}: not a tensor file this importer can read safely (torch.load weights_only "
                          f"refuses it: {first[:160]})") from None


def file_record(path: Path, root: Path | None = None) -> dict:
    """Name (relative to ``root``), bytes and SHA-256 of one input file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
            h.update(chunk)
    name = str(path.relative_to(root)) if root is not None else path.name
    return {"name": name, "bytes": path.stat().st_size, "sha256": h.hexdigest()}


MANIFEST_AFTER = 256   # more input files than this are recorded as one manifest entry


def summarize(records: list[dict], what: str) -> list[dict]:
    """Each file's record, or past ``MANIFEST_AFTER`` files one entry: the SHA-256 of the manifest
    (every name and its SHA-256, one per line, in order) and the total bytes."""
    if len(records) <= MANIFEST_AFTER:
        return records
    text = "".join(f"{r['name']}\t{r['sha256']}\n" for r in records).encode()
    return [{"name": f"manifest of the {len(records):,} files of {what}", "bytes": sum(r["bytes"] for r in records),
             "sha256": hashlib.sha256(text).hexdigest()}]


def as_tensor(v, path: Path, what: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise FormatError(f"{path}: {what} must be a tensor, got {type(v).__name__}")
    return v.detach().cpu()


def check_images(x: torch.Tensor, train, path: Path) -> torch.Tensor:
    """Float images of ``train``'s shape, finite; returned as float32."""
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(train.shape):
        raise FormatError(f"{path}: images have shape {tuple(x.shape)}, but {train.name} images are "
                          f"N×{'×'.join(map(str, train.shape))}")
    if not x.dtype.is_floating_point:
        raise FormatError(f"{path}: images must be floats (the codebase's model input), got {x.dtype}")
    if x.shape[0] == 0:
        raise FormatError(f"{path}: holds no images")
    if not bool(torch.isfinite(x).all()):
        raise FormatError(f"{path}: images contain NaN or Inf values")
    return x.float().contiguous()


def check_labels(y: torch.Tensor, n: int, num_classes: int, path: Path) -> torch.Tensor:
    """Hard labels: n integers in [0, num_classes)."""
    if y.ndim != 1 or y.shape[0] != n:
        raise FormatError(f"{path}: labels have shape {tuple(y.shape)}, expected ({n},) for {n} images")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise FormatError(f"{path}: hard labels must be integers, got {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise FormatError(f"{path}: labels out of range [0, {num_classes}): min {int(y.min())}, max {int(y.max())}")
    return y.long()


def source(dataset: str, root=None):
    """The named dataset's training split (its classes, shape, fingerprint and statistics)."""
    return load_dataset(dataset, "train", root=root)


def build(kind: str, codebase: str, train, images: torch.Tensor, labels: torch.Tensor, files: list[dict], *,
          name: str, encoding: str, mean, std, experiment: int | None = None, soft=None, soft_attrs=None,
          synthetic_lr: float | None = None, zca: dict | None = None, replay=None, replay_batch: int = 0,
          seed: int = 0, config: dict | None = None) -> SyntheticSet:
    """The imported set: method ``imported:<kind>:<name>``, IPC its largest class, every input file's
    SHA-256 under ``release``, nothing of the release that the format cannot check."""
    counts = torch.bincount(labels, minlength=train.num_classes)
    policy = None if soft is None else ("replay" if replay is not None else "static")
    return SyntheticSet(
        kind="images", method=f"imported:{kind}:{name}", ipc=int(counts.max()), num_classes=train.num_classes,
        class_names=train.classes, source_dataset=train.name, source_fingerprint=train.fingerprint, seed=seed,
        method_config={"importer": kind, **(config or {})}, images=images, image_encoding=encoding,
        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), labels=labels, soft_labels=soft,
        soft_label_policy=policy, soft_label_attrs=soft_attrs or {}, replay=replay, replay_batch=replay_batch,
        preprocessing={"zca": zca} if zca else {}, synthetic_lr=synthetic_lr,
        release={"codebase": codebase, "kind": kind, "files": files, "experiment": experiment, "name": name},
        extra={"released": True},
        deviations=("an imported release: made outside this suite; its condensation time is unknown (0 here)",))
