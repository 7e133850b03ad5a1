"""Where image datasets are found and how their files are read: each dataset's spec, the finders
for torchvision layouts, ImageFolder trees (JPEG or PNG copies), idx files, SVHN's .mat and
scikit-learn's digits, and the downloads torchvision offers."""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ._common import SPLIT_SEED, DatasetError, content_hash, stat_signature, stratified_holdout

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageSpec:
    """How to find one image dataset, and how big its ``val`` holdout is."""

    name: str
    val_size: int
    shape: tuple[int, int, int]
    classes: int
    how: str
    finder: Callable[["ImageSpec", Path], "Source | None"]
    downloader: Callable[["ImageSpec", Path], None] | None = None
    test_size: int | None = None  # for sets with no official test split (digits)


@dataclass
class Source:
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
    from PIL import Image  # decoding an ImageFolder copy only

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
                   test: str = "test") -> Source | None:
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
    return Source(f"ImageFolder {'JPEG copy' if _has_jpeg(class_dirs[0]) else 'images'}",
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
    def finder(spec: ImageSpec, root: Path) -> Source | None:
        raw = root / cls_name / "raw"
        stems = [f"{p}-{k}-ubyte" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]
        files = [_idx_file(raw, s) for s in stems]
        if not all(files):
            return _folder_source(spec, root, spec.name)

        def read():
            import torchvision.datasets as tvd  # on use: only torchvision layouts and downloads need it

            xtr, ytr = _idx_pair(files[0], files[1], spec.classes)
            xte, yte = _idx_pair(files[2], files[3], spec.classes)
            return xtr, ytr, xte, yte, list(getattr(tvd, cls_name).classes)

        return Source(f"torchvision {cls_name} idx", stat_signature(files), read, str(raw))

    return finder


def _torchvision_cifar(cls_name: str, folder: str, files: tuple[str, ...]):
    def finder(spec: ImageSpec, root: Path) -> Source | None:
        base = root / folder
        paths = [base / f for f in files]
        if not all(p.is_file() for p in paths):
            return _folder_source(spec, root, spec.name)

        def read():
            import torchvision.datasets as tvd  # on use: only torchvision layouts and downloads need it

            cls = getattr(tvd, cls_name)
            try:  # torchvision checks every file's MD5 before it unpickles it: only the official files load
                tr, te = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
            except RuntimeError as e:
                raise DatasetError(f"{base}: {str(e).split('.')[0]} (torchvision's MD5 check of the official "
                                   "files failed)") from None
            return (_to_nchw(tr.data), np.asarray(tr.targets, np.int64),
                    _to_nchw(te.data), np.asarray(te.targets, np.int64), list(tr.classes))

        return Source(f"torchvision {cls_name} pickle", stat_signature(paths), read, str(base))

    return finder


def _svhn_finder(spec: ImageSpec, root: Path) -> Source | None:
    for base in (root / "svhn", root / "SVHN", root):
        paths = [base / "train_32x32.mat", base / "test_32x32.mat"]
        if all(p.is_file() for p in paths):
            def read(base=base):
                import torchvision.datasets as tvd  # on use: only torchvision layouts and downloads need it

                try:  # torchvision checks each file's MD5 first
                    tr = tvd.SVHN(str(base), split="train", download=False)
                    te = tvd.SVHN(str(base), split="test", download=False)
                except RuntimeError as e:
                    raise DatasetError(f"{base}: {str(e).split('.')[0]} (torchvision's MD5 check failed)") from None
                return (_to_nchw(tr.data), tr.labels.astype(np.int64), _to_nchw(te.data),
                        te.labels.astype(np.int64), [str(i) for i in range(10)])

            return Source("torchvision SVHN mat", stat_signature(paths), read, str(base))
    return _folder_source(spec, root, spec.name)


def _tinyimagenet_finder(spec: ImageSpec, root: Path) -> Source | None:
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

    return Source("Tiny-ImageNet 200 folders (official val used as test)",
                   stat_signature([wnids, ann, base / "train"]), read, str(base))


def _digits_finder(spec: ImageSpec, root: Path) -> Source | None:
    def read():
        from sklearn.datasets import load_digits  # digits only; scikit-learn's datasets module is slow to import

        d = load_digits()
        x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        y = d.target.astype(np.int64)
        test = stratified_holdout(y, spec.test_size, seed=SPLIT_SEED)
        mask = np.zeros(len(y), bool)
        mask[test] = True
        return x[~mask], y[~mask], x[mask], y[mask], [str(i) for i in range(10)]

    import sklearn  # the digits' provenance: its version

    return Source("scikit-learn digits (embedded; fixed stratified 360-image test split)",
                   content_hash(f"sklearn-digits-{spec.test_size}-{sklearn.__version__[:1]}"), read,
                   "scikit-learn package")


def _tv_download(cls_name: str, **kw):
    def download(spec: ImageSpec, root: Path) -> None:
        import torchvision.datasets as tvd  # on use: only torchvision layouts and downloads need it

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
