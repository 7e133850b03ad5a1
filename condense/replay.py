"""Replayable per-epoch soft labels (FKD, Shen & Xing 2022; as SRe2L and CV-DD store them).

For every epoch ``e`` of student training, the relabelling pass fixes the batches and the
augmentation of every view: the order in which the set's images are visited (batches of
``batch_size`` consecutive positions), a RandomResizedCrop box and a horizontal flip per position,
and per batch a CutMix pairing (a permutation of the batch), its λ ~ Beta(1, 1) and the pasted box.
The teachers' logits for exactly those views are stored beside them, so a student replays them and
learns from the labels of the views it sees (docs/format.md §2.1, ``/replay``).

Positions are numbered within an epoch: position ``p`` shows image ``order[e, p]`` cropped by
``crop[e, p]`` (top, left, height, width in pixels), flipped when ``flip[e, p]``, then inside the box
``mix_box[e, p // batch_size]`` (rows r1..r2, columns c1..c2, end-exclusive) the same region of the
view at position ``mix_perm[e, p]`` (a position of the same batch) is pasted. ``logits[e, p]`` is the
label of that view.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

REPLAY_KEYS = ("order", "crop", "flip", "mix_perm", "mix_box", "mix_lam")
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


def set_digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of a set's images and hard labels (their stored bytes and shapes): replay labels name
    the set they were made for by it."""
    h = hashlib.sha256()
    for a in (images, labels):
        arr = np.ascontiguousarray(a.detach().cpu().numpy())
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def resized_crop_box(h: int, w: int, g: torch.Generator, scale=CROP_SCALE, ratio=CROP_RATIO):
    """torchvision's RandomResizedCrop parameters (top, left, height, width), drawn from ``g``: ten
    tries at an area in ``scale`` and a log-uniform aspect ratio, else the centre crop."""
    area = h * w
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1], generator=g))
        log_r = float(torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g))
        cw = int(round(math.sqrt(target * math.exp(log_r))))
        ch = int(round(math.sqrt(target / math.exp(log_r))))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            return top, left, ch, cw
    r = w / h  # fallback: the centre crop at the nearest allowed ratio
    cw, ch = (w, int(round(w / ratio[0]))) if r < ratio[0] else ((int(round(h * ratio[1])), h) if r > ratio[1] else (w, h))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def cutmix_box(h: int, w: int, lam: float, g: torch.Generator) -> tuple[int, int, int, int]:
    """CutMix's box (Yun et al., 2019, as FKD's ``rand_bbox``): sides ``int(side·√(1−λ))`` around a
    uniform centre, clipped to the image; (r1, c1, r2, c2), end-exclusive."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = (int(v) for v in (torch.randint(0, h, (1,), generator=g), torch.randint(0, w, (1,), generator=g)))
    return (min(max(cy - ch // 2, 0), h), min(max(cx - cw // 2, 0), w),
            min(max(cy + ch // 2, 0), h), min(max(cx + cw // 2, 0), w))


def draw_epoch(n: int, h: int, w: int, batch_size: int, g: torch.Generator, shuffle: bool = True) -> dict:
    """One epoch's replay record: the visiting order (a seeded shuffle, as FKD's RandomSampler), a
    crop and a flip per position, and per batch a CutMix permutation, λ ~ Beta(1, 1) and box."""
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    crop = torch.tensor([resized_crop_box(h, w, g) for _ in range(n)], dtype=torch.int16).view(n, 4)
    flip = (torch.rand(n, generator=g) < 0.5).to(torch.uint8)
    perm, boxes, lams = torch.empty(n, dtype=torch.int32), [], []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        perm[start:start + size] = (torch.randperm(size, generator=g) + start).int()
        lam = float(torch.rand(1, generator=g))   # Beta(1, 1) is uniform on [0, 1]
        boxes.append(cutmix_box(h, w, lam, g))
        lams.append(lam)
    return {"order": order.int(), "crop": crop, "flip": flip, "mix_perm": perm,
            "mix_box": torch.tensor(boxes, dtype=torch.int16).view(-1, 4), "mix_lam": torch.tensor(lams)}


def draw(epochs: int, n: int, h: int, w: int, batch_size: int, g: torch.Generator) -> dict:
    """``epochs`` records of :func:`draw_epoch`, stacked (E×N, E×N×4, E×N, E×N, E×B×4, E×B)."""
    recs = [draw_epoch(n, h, w, batch_size, g) for _ in range(epochs)]
    return {k: torch.stack([r[k] for r in recs]) for k in REPLAY_KEYS}


def crop_flip(x: torch.Tensor, crop: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Each image cropped to its box and resized back to its size (bilinear), flipped where asked."""
    from kornia.geometry.transform import crop_and_resize  # drawing views only: reading a set must not load kornia

    h, w = x.shape[-2:]
    c = crop.to(x.device).float()
    top, left, ch, cw = c.unbind(1)
    corners = torch.stack([torch.stack([left, top], 1), torch.stack([left + cw - 1, top], 1),
                           torch.stack([left + cw - 1, top + ch - 1], 1), torch.stack([left, top + ch - 1], 1)], 1)
    out = crop_and_resize(x, corners.to(x.dtype), (h, w))
    f = flip.to(x.device).bool().view(-1, 1, 1, 1)
    return torch.where(f, out.flip(-1), out)


def box_mask(boxes: torch.Tensor, h: int, w: int, device) -> torch.Tensor:
    """N×1×H×W masks, True inside each (r1, c1, r2, c2) box."""
    b = boxes.to(device).long()
    rows, cols = torch.arange(h, device=device).view(1, h, 1), torch.arange(w, device=device).view(1, 1, w)
    m = (rows >= b[:, 0, None, None]) & (rows < b[:, 2, None, None]) & \
        (cols >= b[:, 1, None, None]) & (cols < b[:, 3, None, None])
    return m.unsqueeze(1)


def views(x: torch.Tensor, rec: dict, epoch: int, positions: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The stored views at ``positions`` of ``epoch`` (standardized images ``x``): crop, flip, then the
    CutMix paste from the partner position of the same batch."""
    pos = positions.long().cpu()
    order, crop, flip = rec["order"][epoch].long(), rec["crop"][epoch], rec["flip"][epoch]
    partner = rec["mix_perm"][epoch].long()[pos]
    own = crop_flip(x[order[pos].to(x.device)], crop[pos], flip[pos])
    other = crop_flip(x[order[partner].to(x.device)], crop[partner], flip[partner])
    mask = box_mask(rec["mix_box"][epoch][pos // batch_size], x.shape[-2], x.shape[-1], x.device)
    return torch.where(mask, other, own)


def check(rec: dict, logits: torch.Tensor, n: int, num_classes: int, h: int, w: int, batch_size: int) -> list[str]:
    """The rules a replay record must satisfy (docs/format.md §5, rule 10); returns the problems."""
    if set(rec) != set(REPLAY_KEYS):
        return [f"replay needs {', '.join(REPLAY_KEYS)}, got {', '.join(sorted(rec))}"]
    if logits.ndim != 3 or tuple(logits.shape[1:]) != (n, num_classes):
        return [f"replay soft_labels must be epochs×{n}×{num_classes}, got {tuple(logits.shape)}"]
    e, b = int(logits.shape[0]), math.ceil(n / batch_size) if batch_size >= 1 else 0
    if e < 1 or batch_size < 1:
        return ["replay needs at least one epoch and a batch size >= 1"]
    want = {"order": (e, n), "crop": (e, n, 4), "flip": (e, n), "mix_perm": (e, n), "mix_box": (e, b, 4),
            "mix_lam": (e, b)}
    for k, shape in want.items():
        if tuple(rec[k].shape) != shape:
            return [f"replay/{k} must be {'×'.join(map(str, shape))}, got {tuple(rec[k].shape)}"]
    for k in ("order", "crop", "flip", "mix_perm", "mix_box"):
        if rec[k].dtype.is_floating_point:
            return [f"replay/{k} must hold integers, got {rec[k].dtype}"]
    order = rec["order"].long()
    if not bool((order.sort(1).values == torch.arange(n)).all()):
        return ["replay/order: every epoch must visit each image exactly once"]
    c = rec["crop"].long()
    if bool((c[..., 2] < 1).any() | (c[..., 3] < 1).any() | (c[..., 0] < 0).any() | (c[..., 1] < 0).any()
            | (c[..., 0] + c[..., 2] > h).any() | (c[..., 1] + c[..., 3] > w).any()):
        return [f"replay/crop: a box lies outside the {h}×{w} image or is empty"]
    if bool((rec["flip"].long() > 1).any() | (rec["flip"].long() < 0).any()):
        return ["replay/flip must be 0 or 1"]
    p = rec["mix_perm"].long()
    batch_of = torch.arange(n) // batch_size
    if bool((p < 0).any() | (p >= n).any()) or not bool((batch_of[p.clamp(0, n - 1)] == batch_of).all()):
        return ["replay/mix_perm: every partner must be a position of the same batch"]
    mb = rec["mix_box"].long()
    if bool((mb < 0).any() | (mb[..., 0] > mb[..., 2]).any() | (mb[..., 1] > mb[..., 3]).any()
            | (mb[..., 2] > h).any() | (mb[..., 3] > w).any()):
        return [f"replay/mix_box: a box lies outside the {h}×{w} image"]
    lam = rec["mix_lam"].float()
    if not bool(torch.isfinite(lam).all()) or bool((lam < 0).any() | (lam > 1).any()):
        return ["replay/mix_lam must lie in [0, 1]"]
    return []
