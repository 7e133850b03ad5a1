"""Image datasets as uint8 tensors, with recorded splits and content fingerprints.

Every loader produces the *official* train and test arrays once; they are decoded a single time
and cached as ``.npz`` under ``$CONDENSE_CACHE/arrays`` so later loads take a fraction of a second.
``val`` is carved from the official training set by a class-stratified holdout with a fixed seed
(``SPLIT_SEED``) and a fixed size per dataset; ``train`` is the rest. The test set is never touched.
"""
from __future__ import annotations

import json
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._paths import cache_dir, data_roots, download_allowed
from ._common import (
    SPLIT_SEED,
    atomic_save_npz,
    atomic_write_bytes,
    check_split,
    content_hash,
    derived_fingerprint,
    not_found,
    stat_signature,
    stratified_holdout,
)

CACHE_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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


@dataclass(frozen=True)
class ImageSpec:
    """How to find one image dataset, and how big its ``val`` holdout is."""

    name: str
    val_size: int
    shape: tuple[int, int, int]
    classes: int
    how: str
    finder: Callable[["ImageSpec", Path], "_Source | None"]
    downloader: Callable[["ImageSpec", Path], None] | None = None
    test_size: int | None = None  # for sets with no official test split (digits)


@dataclass
class _Source:
    """A located copy of a dataset: how to decode it, and a cheap signature for the cache key."""

    description: str
    signature: str
    read: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]]
    where: str


# --------------------------------------------------------------------------- readers


def _to_nchw(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.uint8)


def _decode_one(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _read_image_folder(split_dir: Path, classes: list[str] | None = None, grayscale: bool = False):
    """Decode ``split_dir/<class>/*`` (class folders sorted) into uint8 N×C×H×W and labels."""
    classes = classes or sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    files, labels = [], []
    for ci, cname in enumerate(classes):
        cdir = split_dir / cname
        for root, _, names in os.walk(cdir):
            for n in sorted(names):
                if n.lower().endswith(IMAGE_SUFFIXES):
                    files.append(os.path.join(root, n))
                    labels.append(ci)
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        arrays = list(pool.map(_decode_one, files, chunksize=256))
    x = np.stack(arrays)
    if grayscale:
        x = x[..., :1]
    return _to_nchw(x), np.asarray(labels, dtype=np.int64), classes


def _folder_source(spec: ImageSpec, root: Path, folder: str, train: str = "train",
                   test: str = "test") -> _Source | None:
    base = root / folder
    tr, te = base / train, base / test
    if not (tr.is_dir() and te.is_dir()):
        return None
    class_dirs = sorted(d for d in tr.iterdir() if d.is_dir())
    if not class_dirs:
        return None

    def read():
        gray = spec.shape[0] == 1
        xtr, ytr, classes = _read_image_folder(tr, grayscale=gray)
        xte, yte, _ = _read_image_folder(te, classes, grayscale=gray)
        return xtr, ytr, xte, yte, classes

    sig = stat_signature([tr, te, *class_dirs, *(te / d.name for d in class_dirs if (te / d.name).exists())])
    return _Source(f"ImageFolder {'JPEG copy' if _has_jpeg(class_dirs[0]) else 'images'}",
                   sig, read, str(base))


def _has_jpeg(d: Path) -> bool:
    for p in d.iterdir():
        return p.suffix.lower() in (".jpg", ".jpeg")
    return False


def _torchvision_idx(cls_name: str):
    def finder(spec: ImageSpec, root: Path) -> _Source | None:
        raw = root / cls_name / "raw"
        files = [raw / f"{p}-{k}-ubyte" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]
        if not all(f.is_file() for f in files):
            return _folder_source(spec, root, spec.name)

        def read():
            import torchvision.datasets as tvd

            cls = getattr(tvd, cls_name)
            tr, te = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
            return (_to_nchw(tr.data.numpy()), tr.targets.numpy().astype(np.int64),
                    _to_nchw(te.data.numpy()), te.targets.numpy().astype(np.int64), list(tr.classes))

        return _Source(f"torchvision {cls_name} idx", stat_signature(files), read, str(raw))

    return finder


def _torchvision_cifar(cls_name: str, folder: str, files: tuple[str, ...]):
    def finder(spec: ImageSpec, root: Path) -> _Source | None:
        base = root / folder
        paths = [base / f for f in files]
        if not all(p.is_file() for p in paths):
            return _folder_source(spec, root, spec.name)

        def read():
            import torchvision.datasets as tvd

            cls = getattr(tvd, cls_name)
            tr, te = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
            return (_to_nchw(tr.data), np.asarray(tr.targets, np.int64),
                    _to_nchw(te.data), np.asarray(te.targets, np.int64), list(tr.classes))

        return _Source(f"torchvision {cls_name} pickle", stat_signature(paths), read, str(base))

    return finder


def _svhn_finder(spec: ImageSpec, root: Path) -> _Source | None:
    for base in (root / "svhn", root / "SVHN", root):
        paths = [base / "train_32x32.mat", base / "test_32x32.mat"]
        if all(p.is_file() for p in paths):
            def read(base=base):
                import torchvision.datasets as tvd

                tr = tvd.SVHN(str(base), split="train", download=False)
                te = tvd.SVHN(str(base), split="test", download=False)
                return (_to_nchw(tr.data), tr.labels.astype(np.int64), _to_nchw(te.data),
                        te.labels.astype(np.int64), [str(i) for i in range(10)])

            return _Source("torchvision SVHN mat", stat_signature(paths), read, str(base))
    return _folder_source(spec, root, spec.name)


def _tinyimagenet_finder(spec: ImageSpec, root: Path) -> _Source | None:
    base = root / "tiny-imagenet-200"
    wnids, ann = base / "wnids.txt", base / "val" / "val_annotations.txt"
    if not (wnids.is_file() and ann.is_file() and (base / "train").is_dir()):
        return _folder_source(spec, root, spec.name)

    def read():
        classes = wnids.read_text().split()
        xtr, ytr, _ = _read_image_folder(base / "train", classes)
        names, labels = [], []
        for line in ann.read_text().splitlines():
            parts = line.split("\t")
            names.append(str(base / "val" / "images" / parts[0]))
            labels.append(classes.index(parts[1]))
        with ThreadPoolExecutor(max_workers=8) as pool:
            xte = np.stack(list(pool.map(_decode_one, names, chunksize=256)))
        # The official test images carry no labels: the official val set serves as test.
        return xtr, ytr, _to_nchw(xte), np.asarray(labels, np.int64), classes

    return _Source("Tiny-ImageNet 200 folders (official val used as test)",
                   stat_signature([wnids, ann, base / "train"]), read, str(base))


def _digits_finder(spec: ImageSpec, root: Path) -> _Source | None:
    def read():
        from sklearn.datasets import load_digits

        d = load_digits()
        x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        y = d.target.astype(np.int64)
        test = stratified_holdout(y, spec.test_size, seed=SPLIT_SEED)
        mask = np.zeros(len(y), bool)
        mask[test] = True
        return x[~mask], y[~mask], x[mask], y[mask], [str(i) for i in range(10)]

    import sklearn

    return _Source("scikit-learn digits (embedded; fixed stratified 360-image test split)",
                   content_hash(f"sklearn-digits-{spec.test_size}-{sklearn.__version__[:1]}"), read,
                   "scikit-learn package")


def _tv_download(cls_name: str, **kw):
    def download(spec: ImageSpec, root: Path) -> None:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        if cls_name == "SVHN":
            for split in ("train", "test"):
                cls(str(root / "svhn"), split=split, download=True)
        else:
            cls(str(root), train=True, download=True)
            cls(str(root), train=False, download=True)

    return download


IMAGE_DATASETS: dict[str, ImageSpec] = {
    s.name: s
    for s in [
        ImageSpec("digits", 144, (1, 8, 8), 10, "it ships with scikit-learn; install scikit-learn",
                  _digits_finder, test_size=360),
        ImageSpec("mnist", 5000, (1, 28, 28), 10,
                  "put the idx files under <root>/MNIST/raw/ (torchvision layout)",
                  _torchvision_idx("MNIST"), _tv_download("MNIST")),
        ImageSpec("fashion-mnist", 5000, (1, 28, 28), 10,
                  "put the idx files under <root>/FashionMNIST/raw/ (torchvision layout)",
                  _torchvision_idx("FashionMNIST"), _tv_download("FashionMNIST")),
        ImageSpec("cifar10", 5000, (3, 32, 32), 10,
                  "put torchvision's <root>/cifar-10-batches-py/ or an ImageFolder <root>/cifar10/{train,test}/<class>/",
                  _torchvision_cifar("CIFAR10", "cifar-10-batches-py",
                                     ("data_batch_1", "data_batch_5", "test_batch")),
                  _tv_download("CIFAR10")),
        ImageSpec("cifar100", 5000, (3, 32, 32), 100,
                  "put torchvision's <root>/cifar-100-python/ or an ImageFolder <root>/cifar100/{train,test}/<class>/",
                  _torchvision_cifar("CIFAR100", "cifar-100-python", ("train", "test")),
                  _tv_download("CIFAR100")),
        ImageSpec("svhn", 5000, (3, 32, 32), 10,
                  "put train_32x32.mat and test_32x32.mat under <root>/svhn/",
                  _svhn_finder, _tv_download("SVHN")),
        ImageSpec("tinyimagenet", 10000, (3, 64, 64), 200,
                  "unpack tiny-imagenet-200.zip under <root>/ (it is not downloadable through torchvision)",
                  _tinyimagenet_finder),
    ]
}


# --------------------------------------------------------------------------- loading


def _locate(spec: ImageSpec, root, download: bool | None) -> _Source:
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
    for r in roots:
        try:
            r.mkdir(parents=True, exist_ok=True)
            if os.access(r, os.W_OK):
                return r
        except OSError:
            continue
    return None


def _official(spec: ImageSpec, root, download) -> tuple[dict, dict]:
    """The official train/test arrays and their metadata, decoded once then cached."""
    src = _locate(spec, root, download)
    key = content_hash(f"v{CACHE_VERSION}", spec.name, src.description, src.signature)
    folder = cache_dir("arrays")
    arrays_path = folder / f"{spec.name}-{key[:16]}.npz"
    meta_path = folder / f"{spec.name}-{key[:16]}.json"
    if arrays_path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            with np.load(arrays_path) as z:
                return {k: z[k] for k in z.files}, meta
        except (OSError, ValueError, KeyError, pickle.UnpicklingError):
            pass  # a damaged cache entry is rebuilt below
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
    atomic_save_npz(arrays_path, xtr=xtr, ytr=ytr, xte=xte, yte=yte)
    atomic_write_bytes(meta_path, json.dumps(meta).encode())
    return {"xtr": xtr, "ytr": ytr, "xte": xte, "yte": yte}, meta


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
