"""FKD-style relabel files, as SRe2L's and CV-DD's ``relabel.py`` save them, read into the format's
``/replay`` part (``docs/format.md`` §2.1), so that the ``fkd`` protocol replays them exactly.

Layout: ``<dir>/epoch_<e>/batch_<b>.tar``, each ``torch.save([coords, flip, mix_index, mix_lam,
mix_bbox, logits])`` for batch b of epoch e: per view the RandomResizedCrop box as fractions
``(top/H, left/W, height/H, width/W)``, the flip flag, the CutMix partner index within the batch,
λ, the box ``[r1, c1, r2, c2]`` (``images[:, :, r1:r2, c1:c2]``) and the teachers' logits. The
images are visited in the order of ``RandomSampler`` with a generator seeded by ``fkd_seed`` (42 by
default), epoch after epoch from the same generator, which is how the official loader finds a batch
again (``get_img2batch_idx_list``); the reader draws the orders from the same sampler.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ..spec import FormatError
from ._common import file_record, load_pt

EPOCH = re.compile(r"epoch_(\d+)")
BATCH = re.compile(r"batch_(\d+)\.tar")


def _numbered(folder: Path, pattern: re.Pattern, what: str) -> list[Path]:
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.fullmatch(p.name)))
    if not found:
        raise FormatError(f"{folder}: no {what}")
    if [k for k, _ in found] != list(range(len(found))):
        raise FormatError(f"{folder}: {what} are not numbered 0..{len(found) - 1} without gaps")
    return [p for _, p in found]


def read_relabel(folder: Path, n: int, num_classes: int, h: int, w: int, seed: int = 42) -> tuple[dict, torch.Tensor, int, list]:
    """(replay record, E×N×C logits, batch size, file records) of an FKD relabel folder for ``n``
    images of ``h``×``w``; a file that does not fit these images is refused in one line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(f"{folder}: a relabel folder holds epoch_<e>/batch_<b>.tar files")
    epochs = _numbered(folder, EPOCH, "epoch_<e> folders")
    sampler = torch.utils.data.RandomSampler(range(n), generator=torch.Generator().manual_seed(int(seed)))
    rec = {k: [] for k in ("order", "crop", "flip", "mix_perm", "mix_box", "mix_lam")}
    logits, records, batch_size = [], [], None
    for e, ep in enumerate(epochs):
        order = torch.tensor(list(iter(sampler)))   # the official loader's order for this epoch
        crops, flips, perms, boxes, lams, outs, seen = [], [], [], [], [], [], 0
        for bf in _numbered(ep, BATCH, "batch_<b>.tar files"):
            cfg = load_pt(bf)
            if not isinstance(cfg, (list, tuple)) or len(cfg) != 6:
                raise FormatError(f"{bf}: expected [coords, flip, mix_index, mix_lam, mix_bbox, logits]")
            coords, flip, index, lam, bbox, out = cfg
            if not isinstance(coords, torch.Tensor) or coords.ndim != 2 or coords.shape[1] != 4:
                raise FormatError(f"{bf}: coords must be a B×4 tensor")
            b = int(coords.shape[0])
            batch_size = batch_size or b
            if b > batch_size or (b < batch_size and seen + b != n):
                raise FormatError(f"{bf}: {b} views where batches hold {batch_size} (only the last may hold fewer)")
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (b, num_classes) or not out.dtype.is_floating_point \
                    or not bool(torch.isfinite(out).all()):
                raise FormatError(f"{bf}: logits must be {b}×{num_classes} finite floats, got "
                                  f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
            scale = torch.tensor([h, w, h, w], dtype=torch.float64)
            crops.append((coords.double() * scale).round().long())
            flips.append(torch.as_tensor(flip).reshape(b).to(torch.bool))
            if index is None:   # mix off: each view its own partner, an empty box
                perms.append(torch.arange(b) + seen)
                boxes.append(torch.zeros(1, 4, dtype=torch.long))
                lams.append(torch.ones(1))
            else:
                idx = torch.as_tensor(index).long().reshape(-1)
                if idx.shape[0] != b or bool((idx < 0).any() | (idx >= b).any()):
                    raise FormatError(f"{bf}: mix_index must hold {b} positions of this batch")
                perms.append(idx + seen)
                boxes.append(torch.as_tensor([int(v) for v in bbox], dtype=torch.long).view(1, 4))
                lams.append(torch.tensor([float(lam)]))
            outs.append(out.float())
            records.append({**file_record(bf, folder), "name": f"relabel/{bf.relative_to(folder)}"})
            seen += b
        if seen != n:
            raise FormatError(f"{ep}: labels {seen} views, but the set holds {n} images (a relabel made for other images)")
        for k, v in zip(rec, (order, torch.cat(crops), torch.cat(flips), torch.cat(perms), torch.cat(boxes), torch.cat(lams))):
            rec[k].append(v)
        logits.append(torch.cat(outs))
    return {k: torch.stack(v) for k, v in rec.items()}, torch.stack(logits), int(batch_size), records
