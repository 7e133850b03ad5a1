"""CV-DD (Cui et al., 2025, "Dataset Distillation via Committee Voting").

Synthetic images are recovered against a *committee* of BatchNorm teachers from a pool, each member
weighted by a prior of how good its distilled data is (§3.2), and relabelled by the committee with
*batch-specific soft labels* (BSSL, §3.3): the teachers stay in train mode, so every BatchNorm layer
normalises with the synthetic batch's own statistics.

What the official code does, and this module with it:

- **Committee per IPC index**, chosen once, never per iteration (:func:`committee_schedule`): at
  IPC 1 the two members with the highest priors, at IPC 10 the pool's pairs in order (pair *i* for
  IPC index *i*), otherwise two members drawn at random per index. ``committee=1`` is the SRe2L++
  ablation (the best-prior teacher alone).
- **Weights** ``w = softmax(prior / 5)`` for synthesis and ``softmax(prior / 10)`` for relabelling
  (:func:`committee_weights`).
- **Synthesis loss** (Eq. 6): ``Σ_k w_k [CE(f_k(x̃), y) + r_bn Σ_l m_l (‖σ²_l − σ̂²_l‖₂ + ‖μ_l − μ̂_l‖₂)]``
  on the input of every BatchNorm layer with biased variance, ``m_1 = 10`` and 1 after, r_bn = 0.01,
  teachers frozen in eval mode; one image per class per batch; Adam (0.5, 0.9), lr 0.25, cosine
  without warm-up; pixels clamped to the valid range after every step; each iteration a
  RandomResizedCrop and a flip drawn once for the batch, then a roll of 0..4 pixels.
- **Initialisation**: real-image patches, a 2×2 mosaic of four real images of the class at half
  size (the paper's figure; the code that makes them is not in the official repository).
- **BSSL** (:func:`bssl_logits`): ensemble logits ``Σ_k w_k z_k`` of the teachers in train mode, on
  batches of 16 forwarded as two halves of 8, without gradients (on copies: the pool's running
  statistics are never touched).
"""
from __future__ import annotations

import copy
import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import generator, per_class_indices
from .infer import BNStatLoss

SYNTHESIS_TEMPERATURE = 5.0
RELABEL_TEMPERATURE = 10.0
BSSL_BATCH, BSSL_HALF = 16, 8


def committee_weights(priors, temperature: float) -> torch.Tensor:
    """``softmax(prior / T)`` over the committee's priors (Eq. 5)."""
    return torch.softmax(torch.as_tensor(priors, dtype=torch.float64) / temperature, 0).float()


def committee_schedule(priors, ipc: int, size: int = 2, seed: int = 0) -> list[tuple[int, ...]]:
    """The committee (indices into the pool) of every IPC index, as the official scripts choose it.

    ``size=1``: the best-prior teacher for every index (SRe2L++). ``size=2``: at IPC 1 the two best
    priors; at IPC 10 pair *i* of the pool's pairs in order, for a pool of at least five (the ten
    pairs of five); otherwise two members drawn at random (seeded) per index."""
    m = len(priors)
    if size < 1:
        raise ValueError(f"committee size must be >= 1, got {size}")
    if size > m:
        raise ValueError(f"a committee of {size} needs a pool of at least {size} teachers, got {m}")
    best = sorted(range(m), key=lambda i: (-float(priors[i]), i))
    if size == 1:
        return [(best[0],)] * ipc
    if ipc == 1:
        return [tuple(sorted(best[:size]))]
    if ipc == 10 and size == 2 and math.comb(m, 2) >= 10:
        return list(itertools.combinations(range(m), 2))[:10]
    g = generator(seed)
    return [tuple(sorted(torch.randperm(m, generator=g)[:size].tolist())) for _ in range(ipc)]


def patch_init(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int,
               g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` 2×2 mosaics per class, each of four distinct random real images of that class at
    half size (bilinear, antialiased); returns (mosaics, the source indices: per_class × C × 4)."""
    idx = []
    for members in per_class_indices(labels, num_classes):
        if len(members) < 4:
            raise ValueError(f"CV-DD's patch initialisation needs 4 images of every class, a class has {len(members)}")
        idx.append(torch.stack([members[torch.randperm(len(members), generator=g)[:4]] for _ in range(per_class)]))
    idx = torch.stack(idx, 1)                                  # per_class × C × 4
    x = images[idx.flatten()].float()
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(h // 2, w // 2), mode="bilinear", antialias=True, align_corners=False)
    small = small.view(-1, 4, *small.shape[1:])
    top, bottom = torch.cat([small[:, 0], small[:, 1]], -1), torch.cat([small[:, 2], small[:, 3]], -1)
    mosaic = torch.cat([top, bottom], -2)
    return F.interpolate(mosaic, size=(h, w), mode="nearest") if mosaic.shape[-2:] != (h, w) else mosaic, idx


def resized_crop_box(h: int, w: int, g: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop parameters (top, left, height, width), drawn from ``g``."""
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


def crop_flip_roll(x: torch.Tensor, g: torch.Generator, jitter: int) -> torch.Tensor:
    """One RandomResizedCrop and one flip for the whole batch, then a roll of 0..``jitter`` pixels."""
    from kornia.geometry.transform import crop_and_resize

    h, w = x.shape[-2:]
    top, left, ch, cw = resized_crop_box(h, w, g)
    box = torch.tensor([[left, top], [left + cw - 1, top], [left + cw - 1, top + ch - 1], [left, top + ch - 1]],
                       dtype=x.dtype, device=x.device)
    out = crop_and_resize(x, box.expand(x.shape[0], 4, 2), (h, w))
    if bool(torch.rand(1, generator=g) < 0.5):
        out = out.flip(-1)
    dx, dy = (int(v) for v in torch.randint(0, jitter + 1, (2,), generator=g))
    return torch.roll(out, shifts=(dx, dy), dims=(2, 3))


def committee_loss(models, weights: torch.Tensor, bn_losses, x: torch.Tensor, y: torch.Tensor,
                   r_bn: float) -> torch.Tensor:
    """Eq. 6 for one batch: ``Σ_k w_k (CE_k + r_bn · BN_k)`` (``bn_losses``: one :class:`BNStatLoss`
    per member, grouping the whole batch)."""
    total = x.new_zeros(())
    for model, w, bn in zip(models, weights.tolist(), bn_losses):
        ce = F.cross_entropy(model(x), y)
        total = total + w * (ce + r_bn * bn.pop().sum())
    return total


def synthesize(models, weights: torch.Tensor, x0: torch.Tensor, y: torch.Tensor, *, iterations: int,
               lr: float, betas=(0.5, 0.9), r_bn: float, first_bn_multiplier: float, jitter: int,
               lo: torch.Tensor, hi: torch.Tensor, g: torch.Generator, progress: bool = False,
               desc: str = "CV-DD") -> torch.Tensor:
    """Recover one batch against its committee (§3.2): Adam on the pixels, cosine without warm-up,
    the augmentation of :func:`crop_flip_roll` each iteration, pixels clamped to [lo, hi] after each
    step (``lo``/``hi``: per-channel bounds of the standardised range)."""
    from tqdm.auto import trange

    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, betas=betas, eps=1e-8)
    bns = [BNStatLoss(m, x.shape[0], first_bn_multiplier) for m in models]
    try:
        for it in trange(iterations, desc=desc, disable=not progress, leave=False, unit="it"):
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * it / iterations))
            loss = committee_loss(models, weights, bns, crop_flip_roll(x, g, jitter), y, r_bn)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.copy_(torch.maximum(torch.minimum(x, hi), lo))
    finally:
        for bn in bns:
            bn.close()
    return x.detach()


@torch.no_grad()
def bssl_logits(models, weights: torch.Tensor, x: torch.Tensor, batch: int = BSSL_BATCH,
                half: int = BSSL_HALF) -> torch.Tensor:
    """Batch-specific soft labels (§3.3): ``Σ_k w_k z_k`` with every teacher in train mode, so that its
    BatchNorm layers use the statistics of the synthetic batch, forwarded in batches of ``batch`` as
    chunks of ``half``. Runs on copies: the teachers' running statistics are not updated."""
    copies = []
    for m in models:
        c = copy.deepcopy(m).train()
        for mod in c.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.momentum = 0.0  # train-mode statistics, running buffers left as they are
        copies.append(c)
    out = []
    for i in range(0, x.shape[0], batch):
        for xb in x[i:i + batch].split(half):
            out.append(sum(w * c(xb) for c, w in zip(copies, weights.tolist())))
    return torch.cat(out)
