"""Image datasets as uint8 tensors, with recorded splits and content fingerprints.

Every loader produces the *official* train and test arrays once; they are decoded a single time
and cached as ``.npz`` under ``$CONDENSE_CACHE/arrays`` so later loads take a fraction of a second.
``val`` is carved from the official training set by a class-stratified holdout with a fixed seed
(``SPLIT_SEED``) and a fixed size per dataset; ``train`` is the rest. The test set is never touched.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._paths import cache_dir, data_roots, download_allowed
from ._common import (
    SPLIT_SEED,
    DatasetError,
    atomic_save_npz,
    atomic_write_bytes,
    check_split,
    content_hash,
    derived_fingerprint,
    load_npz,
    not_found,
    stat_signature,
    stratified_holdout,
    try_cache,
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
    """One image file as uint8 H×W×3; a damaged file raises :class:`DatasetError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"{path}: unreadable image ({why})") from None


def _read_image_folder(split_dir: Path, classes: list[str] | None = None, grayscale: bool = False,
                       size: tuple[int, int] | None = None):
    """Decode ``split_dir/<class>/*`` (class folders sorted) into uint8 N×C×H×W and labels.

    Every image must be ``size`` (H, W) when given; the first one that is not is named."""
    classes = classes or sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    files, labels = [], []
    for ci, cname in enumerate(classes):
        cdir = split_dir / cname
        for root, _, names in os.walk(cdir):
            for n in sorted(names):
                if n.lower().endswith(IMAGE_SUFFIXES):
                    files.append(os.path.join(root, n))
                    labels.append(ci)
    if not files:
        raise DatasetError(f"{split_dir}: no image files in its class folders")
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        arrays = list(pool.map(_decode_one, files, chunksize=256))
    want = size or arrays[0].shape[:2]
    for f, a in zip(files, arrays):
        if a.shape[:2] != tuple(want):
            raise DatasetError(f"{f}: image is {a.shape[1]}×{a.shape[0]} pixels, expected {want[1]}×{want[0]}")
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
        xtr, ytr, classes = _read_image_folder(tr, grayscale=gray, size=spec.shape[1:])
        xte, yte, _ = _read_image_folder(te, classes, grayscale=gray, size=spec.shape[1:])
        return xtr, ytr, xte, yte, classes

    sig = _tree_signature([tr, te])
    return _Source(f"ImageFolder {'JPEG copy' if _has_jpeg(class_dirs[0]) else 'images'}",
                   sig, read, str(base))


def _tree_signature(dirs: list[Path]) -> str:
    """:func:`stat_signature` of every file under ``dirs``: an image edited in place changes its own
    size or time, not its folder's (0.35 s for CIFAR-10's 60,000 files on two cores)."""
    files = []
    for top in dirs:
        for root, folders, names in os.walk(top):
            folders.sort()
            files += [Path(root, n) for n in sorted(names)]
    return stat_signature(files)


def _has_jpeg(d: Path) -> bool:
    for p in d.iterdir():
        return p.suffix.lower() in (".jpg", ".jpeg")
    return False


IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 1 << 32


def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format: two zero bytes, a type byte, the number of dimensions, the
    big-endian dimensions, then the data), plain or gzip-compressed. A bad magic, a size that the
    header does not declare, or a damaged gzip stream raises :class:`DatasetError` naming the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_DTYPES or not 1 <= head[3] <= 4:
                raise DatasetError(f"{path}: not an idx file (bad magic {head.hex() or 'empty'})")
            raw_dims = f.read(4 * head[3])
            if len(raw_dims) < 4 * head[3]:
                raise DatasetError(f"{path}: truncated idx header")
            dims = struct.unpack(f">{head[3]}I", raw_dims)
            dtype = np.dtype(IDX_DTYPES[head[2]])
            n = math.prod(dims) * dtype.itemsize
            if n > MAX_IDX_BYTES:
                raise DatasetError(f"{path}: idx header declares {dims}, {n:,} bytes, over the {MAX_IDX_BYTES:,} limit")
            data = f.read(n + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: unreadable idx file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if len(data) != n:
        raise DatasetError(f"{path}: idx header declares {'×'.join(map(str, dims))} ({n:,} bytes of data) but "
                           f"the file holds {len(data) if len(data) <= n else 'more than'} "
                           f"{'' if len(data) <= n else f'{n:,} '}bytes (truncated or not this format)")
    return np.frombuffer(data, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _idx_file(raw: Path, stem: str) -> Path | None:
    """``stem`` as distributed (gzip-compressed) or unpacked; the unpacked copy wins."""
    for p in (raw / stem, raw / f"{stem}.gz"):
        if p.is_file():
            return p
    return None


def _idx_pair(images: Path, labels: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images), read_idx(labels).astype(np.int64)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DatasetError(f"{images}: {x.shape} images do not pair with {labels}: {y.shape} labels")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetError(f"{labels}: labels outside [0, {num_classes})")
    return _to_nchw(x.astype(np.uint8)), y


def _torchvision_idx(cls_name: str):
    def finder(spec: ImageSpec, root: Path) -> _Source | None:
        raw = root / cls_name / "raw"
        stems = [f"{p}-{k}-ubyte" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]
        files = [_idx_file(raw, s) for s in stems]
        if not all(files):
            return _folder_source(spec, root, spec.name)

        def read():
            import torchvision.datasets as tvd

            xtr, ytr = _idx_pair(files[0], files[1], spec.classes)
            xte, yte = _idx_pair(files[2], files[3], spec.classes)
            return xtr, ytr, xte, yte, list(getattr(tvd, cls_name).classes)

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
            try:  # torchvision checks every file's MD5 before it unpickles it: only the official files load
                tr, te = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
            except RuntimeError as e:
                raise DatasetError(f"{base}: {str(e).split('.')[0]} (torchvision's MD5 check of the official "
                                   "files failed)") from None
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

                try:  # torchvision checks each file's MD5 first
                    tr = tvd.SVHN(str(base), split="train", download=False)
                    te = tvd.SVHN(str(base), split="test", download=False)
                except RuntimeError as e:
                    raise DatasetError(f"{base}: {str(e).split('.')[0]} (torchvision's MD5 check failed)") from None
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
