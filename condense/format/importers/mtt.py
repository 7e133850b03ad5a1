"""Importer ``mtt``: MTT (GeorgeCazenavette/mtt-distillation) and the releases that keep its layout
(DATM, FTD, TESLA).

``distill.py`` saves, in one folder, ``images_best.pt`` (N×C×H×W floats in the model-input space),
``labels_best.pt`` (N hard labels; DATM: N×C learned soft logits) and, from DATM on, ``lr_best.pt``
(the learned synthetic learning rate, a 0-d tensor), or ``images_<it>.pt`` at iteration ``it``.
With ``--zca`` (``utils.get_dataset``) the images are ZCA-whitened pixels in [0, 1] without
``Normalize`` (kornia ``ZCAWhitening``, eps 0.1, fitted on the whole training split); without it they
are standardized by the codebase's constants (those of the DC codebase it derives from).

Releases that split one set across files (``images_0.pt`` … ``images_4.pt`` for IPC 50) are read
with ``shards=True``: the shards are concatenated in numeric order, labels likewise.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ...zca import fit_zca
from ..spec import FormatError
from ._common import as_tensor, build, check_images, check_labels, file_record, load_pt, source
from .dc import normalization

CODEBASE = "GeorgeCazenavette/mtt-distillation"
NUMBERED = re.compile(r"images_(\d+)\.pt")


def _files(folder: Path, iteration: int | None, shards: bool) -> list[tuple[Path, Path, Path | None]]:
    """(images, labels, lr or None) files, in the order their images are concatenated."""
    def lr_of(tag: str) -> Path | None:
        p = folder / f"lr_{tag}.pt"
        return p if p.is_file() else None

    numbered = sorted((int(m.group(1)), p) for p in folder.glob("images_*.pt") if (m := NUMBERED.fullmatch(p.name)))
    if shards:
        if not numbered:
            raise FormatError(f"{folder}: no images_<k>.pt shards")
        return [(p, folder / f"labels_{k}.pt", lr_of(str(k))) for k, p in numbered]
    if iteration is not None:
        return [(folder / f"images_{iteration}.pt", folder / f"labels_{iteration}.pt", lr_of(str(iteration)))]
    if (folder / "images_best.pt").is_file():
        return [(folder / "images_best.pt", folder / "labels_best.pt", lr_of("best"))]
    if numbered:
        raise FormatError(f"{folder}: no images_best.pt, but {len(numbered)} numbered files (images_"
                          f"{numbered[0][0]}.pt …): pass --iteration K for one checkpoint, or --shards to join shards")
    raise FormatError(f"{folder}: no images_best.pt (an MTT-style release folder holds images_best.pt and labels_best.pt)")


def read(path: Path, dataset: str, *, name: str | None = None, root=None, train=None, zca: bool = False, zca_eps: float = 0.1,
         iteration: int | None = None, shards: bool = False, mean=None, std=None, **_) -> list:
    folder = Path(path)
    if not folder.is_dir():
        raise FormatError(f"{folder}: an MTT-style release is a folder holding images_best.pt and labels_best.pt")
    train = train if train is not None else source(dataset, root)
    xs, ys, softs, lrs, records = [], [], [], [], []
    for images_file, labels_file, lr_file in _files(folder, iteration, shards):
        x = check_images(as_tensor(load_pt(images_file), images_file, "images"), train, images_file)
        lab = as_tensor(load_pt(labels_file), labels_file, "labels")
        if lab.ndim == 2:   # DATM: learned soft logits, one row per image
            if tuple(lab.shape) != (x.shape[0], train.num_classes) or not lab.dtype.is_floating_point:
                raise FormatError(f"{labels_file}: soft labels have shape {tuple(lab.shape)}, expected "
                                  f"({x.shape[0]}, {train.num_classes}) floats")
            if not bool(torch.isfinite(lab).all()):
                raise FormatError(f"{labels_file}: soft labels contain NaN or Inf values")
            softs.append(lab.float())
            lab = lab.argmax(1)
        ys.append(check_labels(lab, x.shape[0], train.num_classes, labels_file))
        xs.append(x)
        records += [file_record(images_file, folder), file_record(labels_file, folder)]
        if lr_file is not None:
            lr = as_tensor(load_pt(lr_file), lr_file, "the learning rate")
            if lr.numel() != 1 or not bool(torch.isfinite(lr).all()) or not 0 < float(lr) <= 100:
                raise FormatError(f"{lr_file}: the learned learning rate must be one number in (0, 100], got "
                                  f"{lr.flatten()[:3].tolist()}")
            lrs.append(float(lr))
            records.append(file_record(lr_file, folder))
    if softs and len(softs) != len(xs):
        raise FormatError(f"{folder}: some shards hold soft labels and some hard ones")
    if len(set(lrs)) > 1:
        raise FormatError(f"{folder}: the shards record different learning rates {sorted(set(lrs))}")
    x, y = torch.cat(xs), torch.cat(ys)
    record = None
    if zca:
        mu, sd = (0.0,) * train.shape[0], (1.0,) * train.shape[0]   # MTT whitens [0, 1] pixels, no Normalize
        record = fit_zca(dataset, zca_eps, False, root=root).record(dataset)
    else:
        mu, sd = normalization(dataset, mean, std, folder)
    tag = "best" if iteration is None and not shards else ("shards" if shards else str(iteration))
    return [build("mtt", CODEBASE, train, x, y, records, name=name or folder.name, encoding="model-input", mean=mu,
                  std=sd, soft=torch.cat(softs) if softs else None,
                  soft_attrs={"space": "logits", "temperature": 1.0, "learned": True} if softs else None,
                  synthetic_lr=lrs[0] if lrs else None, zca=record, config={"files": tag, "zca": bool(zca)})]
