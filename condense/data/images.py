"""Image datasets as uint8 tensors, with recorded splits and content fingerprints.

Every loader produces the *official* train and test arrays once; they are decoded a single time
and cached as ``.npz`` under ``$CONDENSE_CACHE/arrays`` so later loads take a fraction of a second.
``val`` is carved from the official training set by a class-stratified holdout with a fixed seed
(``SPLIT_SEED``) and a fixed size per dataset; ``train`` is the rest. The test set is never touched.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._paths import cache_dir, data_roots, download_allowed, unwritable
from .image_files import IMAGE_DATASETS, IMAGE_SUFFIXES, ImageSpec, Source  # noqa: F401
from ._common import (SPLIT_SEED, atomic_save_npz, atomic_write_bytes, check_split, content_hash, derived_fingerprint,
                      load_npz, not_found, stratified_holdout, try_cache)

CACHE_VERSION = 1


@dataclass(eq=False)
class ImageDataset:
    """One split of an image dataset: ``images`` uint8 N×C×H×W, ``labels`` int64 N."""

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    fingerprint: str
    split_info: dict = field(default_factory=dict)
    positions: torch.Tensor | None = None  # positions in the official split (train/val: official train)

    kind = "images"

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (f"ImageDataset({self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={c}x{h}x{w}, classes={self.num_classes}, source={self.source!r})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0, 1] float) images to float, standardised by the dataset mean and std."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float images and labels, on ``device``."""
        return self.normalize(self.images.to(device)), self.labels.to(device)

    def subset(self, indices, split: str | None = None, rule: dict | None = None) -> "ImageDataset":
        idx = torch.as_tensor(indices, dtype=torch.long)
        spec = {"subset_of": self.fingerprint, **(rule or {"indices": content_hash(idx.numpy())})}
        return ImageDataset(
            name=self.name, split=split or self.split, images=self.images[idx],
            labels=self.labels[idx], classes=self.classes, mean=self.mean, std=self.std,
            source=self.source, fingerprint=derived_fingerprint(self.fingerprint, spec),
            split_info={**self.split_info, **spec},
            positions=self.positions[idx] if self.positions is not None else idx,
        )


# --------------------------------------------------------------------------- loading


def _locate(spec: ImageSpec, root, download: bool | None) -> Source:
    roots = data_roots(root)
    looked = []
    for r in roots:
        src = spec.finder(spec, r)
        if src is not None:
            return src
        looked.append(str(r))
    if spec.downloader is not None and download_allowed(download):
        target = _writable(roots) or cache_dir("downloads")
        spec.downloader(spec, target)
        src = spec.finder(spec, target)
        if src is not None:
            return src
        looked.append(f"{target} (after download)")
    how = spec.how + "; set CONDENSE_DATA or pass root=" + (
        ", or allow downloading with download=True / CONDENSE_DOWNLOAD=1" if spec.downloader else "")
    raise not_found(spec.name, looked, how)


def _writable(roots: list[Path]) -> Path | None:
    """The first of ``roots`` where files can be created (a download lands there)."""
    return next((r for r in roots if unwritable(r) is None), None)


def _official(spec: ImageSpec, root, download) -> tuple[dict, dict]:
    """The official train/test arrays and their metadata, decoded once then cached."""
    src = _locate(spec, root, download)
    key = content_hash(f"v{CACHE_VERSION}", spec.name, src.description, src.signature)
    folder = cache_dir("arrays", write=False)
    arrays_path = folder / f"{spec.name}-{key[:16]}.npz"
    meta_path = folder / f"{spec.name}-{key[:16]}.json"
    cached = _read_cache(arrays_path, meta_path)
    if cached is not None:
        return cached
    xtr, ytr, xte, yte, classes = src.read()
    for what, x in (("train", xtr), ("test", xte)):
        if x.shape[1:] != spec.shape:
            raise ValueError(f"{spec.name} {what} images at {src.where} have shape {x.shape[1:]}, "
                             f"expected {spec.shape}")
    xf = xtr.astype(np.float64) / 255.0
    meta = {
        "classes": [str(c) for c in classes],
        "source": src.description,
        "where": src.where,
        "mean": xf.mean(axis=(0, 2, 3)).round(6).tolist(),
        "std": xf.std(axis=(0, 2, 3)).round(6).tolist(),
        "fingerprint": {"train": content_hash(xtr, ytr), "test": content_hash(xte, yte)},
    }
    del xf

    def store():
        cache_dir("arrays")
        atomic_save_npz(arrays_path, xtr=xtr, ytr=ytr, xte=xte, yte=yte)
        atomic_write_bytes(meta_path, json.dumps(meta).encode())

    try_cache("decoded arrays", store)
    return {"xtr": xtr, "ytr": ytr, "xte": xte, "yte": yte}, meta


def _read_cache(arrays_path: Path, meta_path: Path) -> tuple[dict, dict] | None:
    """A cached decode, if it is intact: the arrays must hash to the fingerprints recorded beside
    them, so a damaged or edited cache entry is rebuilt, never trusted."""
    if not (arrays_path.is_file() and meta_path.is_file()):
        return None
    arr = load_npz(arrays_path)
    try:
        meta = json.loads(meta_path.read_text())
        fp = meta["fingerprint"]
        ok = (arr is not None and set(arr) == {"xtr", "ytr", "xte", "yte"}
              and content_hash(arr["xtr"], arr["ytr"]) == fp["train"]
              and content_hash(arr["xte"], arr["yte"]) == fp["test"]
              and all(isinstance(c, str) for c in meta["classes"]) and len(meta["mean"]) == len(meta["std"])
              and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in [*meta["mean"], *meta["std"]]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (arr, meta) if ok else None


def load_image_dataset(name: str, split: str, root=None, download=None) -> ImageDataset:
    spec = IMAGE_DATASETS[name]
    check_split(split)
    arr, meta = _official(spec, root, download)
    info = {"val_seed": SPLIT_SEED, "val_size": spec.val_size, "val_rule": "class-stratified holdout",
            "official_train": int(len(arr["ytr"])), "official_test": int(len(arr["yte"]))}
    if split == "test":
        x, y, fp = arr["xte"], arr["yte"], meta["fingerprint"]["test"]
        positions = np.arange(len(y))
    else:
        val = stratified_holdout(arr["ytr"], spec.val_size, seed=SPLIT_SEED)
        mask = np.zeros(len(arr["ytr"]), bool)
        mask[val] = True
        if split == "train":
            mask = ~mask
        x, y = arr["xtr"][mask], arr["ytr"][mask]
        positions = np.flatnonzero(mask)
        fp = derived_fingerprint(meta["fingerprint"]["train"],
                                 {"split": split, "val_seed": SPLIT_SEED, "val_size": spec.val_size})
    return ImageDataset(
        name=name, split=split, images=torch.from_numpy(np.ascontiguousarray(x)),
        labels=torch.from_numpy(np.ascontiguousarray(y)), classes=tuple(meta["classes"]),
        mean=tuple(meta["mean"]), std=tuple(meta["std"]), source=meta["source"], fingerprint=fp,
        split_info=info, positions=torch.from_numpy(positions),
    )


def image_availability(name: str, root=None) -> dict:
    """Whether an image dataset is present, where, and from which source, without decoding it."""
    spec = IMAGE_DATASETS[name]
    for r in data_roots(root):
        src = spec.finder(spec, r)
        if src is not None:
            return {"available": True, "source": src.description, "where": src.where}
    return {"available": False, "source": None, "where": None}
