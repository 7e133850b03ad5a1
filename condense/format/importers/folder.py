"""Importer ``folder``: an image folder, one sub-folder per class (PNG or JPEG), as SRe2L, RDED, CV-DD
and many other methods release their sets; classes in sorted folder order and images in sorted file
order within each, as torchvision's ``ImageFolder`` indexes them (the index relabel files refer to).

Pixels are stored as ``uint8`` beside the suite's statistics of the named dataset, so the set trains
exactly as the suite's own sets of the same pixels. An optional FKD relabel folder
(:mod:`.relabel`) becomes the ``/replay`` part.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..spec import FormatError
from ._common import build, check_labels, file_record, source, summarize
from .relabel import read_relabel

EXTENSIONS = (".png", ".jpg", ".jpeg")
CODEBASES = "image folder (SRe2L, RDED, CV-DD and others)"


def _image(path: Path, channels: int, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # PIL loads only where an image folder is read

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            a = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise FormatError(f"{path}: not a readable image ({str(e)[:120]})") from None
    if a.shape[:2] != shape:
        raise FormatError(f"{path}: image is {a.shape[0]}×{a.shape[1]}, the others (and the dataset) "
                          f"{shape[0]}×{shape[1]}: a folder holds one image size")
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def read(path: Path, dataset: str, *, name: str | None = None, root=None, train=None, relabel: Path | None = None,
         fkd_seed: int = 42, **_) -> list:
    folder = Path(path)
    if not folder.is_dir():
        raise FormatError(f"{folder}: an image-folder release is a folder with one sub-folder per class")
    train = train if train is not None else source(dataset, root)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) != train.num_classes:
        raise FormatError(f"{folder}: {len(classes)} class folders, but {dataset} has {train.num_classes} classes "
                          f"(a missing class, or another dataset)")
    c, h, w = train.shape
    by_name = set(classes) == set(train.classes)   # folders named as the classes: by name, else sorted order
    images, labels, records = [], [], []
    for k, cls in enumerate(classes):
        k = train.classes.index(cls) if by_name else k
        files = sorted(p for p in (folder / cls).iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not files:
            raise FormatError(f"{folder / cls}: no PNG or JPEG images (every class needs at least one)")
        for f in files:
            images.append(_image(f, c, (h, w)))
            labels.append(k)
            records.append(file_record(f, folder))
    x = torch.from_numpy(np.stack(images))
    y = check_labels(torch.tensor(labels), len(labels), train.num_classes, folder)
    replay, soft, batch = None, None, 0
    if relabel is not None:
        replay, soft, batch, more = read_relabel(Path(relabel), len(labels), train.num_classes, h, w, fkd_seed)
        records = summarize(records, "the images") + summarize(more, "the relabel files")
    else:
        records = summarize(records, "the images")
    return [build("folder", CODEBASES, train, x, y, records, name=name or folder.name, encoding="uint8",
                  mean=train.mean, std=train.std, soft=soft,
                  soft_attrs={"space": "logits", "from": "FKD relabel", "fkd_seed": fkd_seed} if soft is not None else None,
                  replay=replay, replay_batch=batch, config={"classes": classes[:1000]} if len(classes) <= 1000 else {})]
