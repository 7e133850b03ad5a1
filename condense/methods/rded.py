"""RDED: On the Diversity and Realism of Distilled Dataset (Sun et al., CVPR 2024; the official
``synthesize/main.py`` and ``synthesize/utils.py`` of LINs-lab/RDED).

No optimisation: a pretrained observer picks realistic, diverse patches of real images (§3.2) and
stitches them (§3.3):

1. **Candidates.** Per class, ``mipc`` random real images (300); from each, ``num_crop`` (5) random
   square crops (RandomResizedCrop, scale 0.08–1, ratio 1) resized to ``side / factor``.
2. **Scoring** (Eq. 5, the realism score): each crop, zero-padded to the full side in standardized space,
   is scored by the observer's cross-entropy −log p(y | crop); each image keeps its best crop, and the
   class keeps the ``IPC · factor²`` best images' crops.
3. **Stitching** (Eq. 6): factor × factor crops (nearest-neighbour resized to their cell) make one image;
   factor 1 (the CIFAR scripts) keeps each crop whole.
4. **Storage and labels**: pixels truncated to uint8 and saved as PIL JPEGs (quality 75), as the official
   code saves them; the student is trained on the decoded images with the observer's soft labels of the
   views it sees (FKD-style replay labels, the format's ``/replay`` part), so that ``fkd`` trains on
   RDED's set as on CV-DD's.

The observer is a teacher of the pool (:mod:`condense.teachers`; ConvNet-3 with BatchNorm on CIFAR in
the official scripts ``cifar10_10ipc_conv3_to_conv3_cr5.sh``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..checks import Rule
from ..teachers import (SOFT_DTYPES, TeacherRecipe, check_pool_config, ensemble_logits, pool_costs, pool_summary,
                        teacher_pool)
from ._common import CondenseOutput, ReplayLabels, jpeg_roundtrip, replay_labels
from .base import Condenser, generator, per_class_indices, register_condenser

LABEL_MODES = ("replay", "static")
IMAGE_IO = ("jpeg", "lossless")


@dataclass(frozen=True)
class RDEDConfig:
    teachers: tuple[str, ...] = ("convnet_bn",)   # the observer (and relabeller): the pool's first teacher
    teacher_recipe: str = "paper"
    teacher_seed: int = 0
    factor: int = 1                   # crops per side of a stitched image (1 on CIFAR, 2 on ImageNet scripts)
    num_crop: int = 5
    mipc: int = 300                   # candidate real images per class
    soft_labels: str = "replay"
    replay_epochs: int = 300
    replay_batch: int = 16
    soft_label_dtype: str = "float16"
    image_io: str = "jpeg"
    jpeg_quality: int = 75

    def __post_init__(self):
        check_pool_config(self, "rded", factor=Rule(lo=1, hi=16), num_crop=Rule(lo=1, hi=1000),
                          mipc=Rule(lo=1, hi=1_000_000), soft_labels=Rule(choices=LABEL_MODES),
                          replay_epochs=Rule(lo=1, hi=100_000), replay_batch=Rule(lo=1, hi=100_000),
                          soft_label_dtype=Rule(choices=SOFT_DTYPES), image_io=Rule(choices=IMAGE_IO),
                          jpeg_quality=Rule(lo=1, hi=95))

    @classmethod
    def preset(cls, name: str) -> "RDEDConfig":
        return cls() if name == "paper" else cls(teacher_recipe="quick")


def random_square_crops(x: torch.Tensor, num: int, size: int, g: torch.Generator) -> torch.Tensor:
    """``num`` RandomResizedCrop views (scale U(0.08, 1) of the area, ratio 1) of every image of ``x``
    (N×C×H×W floats), resized to ``size`` (bilinear, antialiased): num × N × C × size × size. A side
    that does not fit falls back to the whole image, as torchvision's fallback for ratio 1 does."""
    n, _, h, w = x.shape
    out = x.new_empty((num, n, x.shape[1], size, size))
    for k in range(num):
        for i in range(n):
            side = 0
            for _ in range(10):  # torchvision's ten tries
                s = int(round(math.sqrt(float(torch.empty(()).uniform_(0.08, 1.0, generator=g)) * h * w)))
                if 0 < s <= min(h, w):
                    side = s
                    break
            side = side or min(h, w)
            top = int(torch.randint(h - side + 1, (1,), generator=g))
            left = int(torch.randint(w - side + 1, (1,), generator=g))
            patch = x[i:i + 1, :, top:top + side, left:left + side]
            out[k, i] = F.interpolate(patch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return out


def centre_pad(x: torch.Tensor, side: int) -> torch.Tensor:
    """Zero padding (in standardized space) to ``side`` × ``side``, the larger half after (``pad``)."""
    dv, dh = side - x.shape[-2], side - x.shape[-1]
    return F.pad(x, (dh // 2, dh - dh // 2, dv // 2, dv - dv // 2))


@torch.no_grad()
def realism_scores(observer, crops: torch.Tensor, label: int, side: int, batch: int = 512) -> torch.Tensor:
    """Eq. 5: −log p(label | padded crop) under the observer, for crops of shape m × N × C × s × s
    (standardized): m × N."""
    m, n = crops.shape[:2]
    flat = centre_pad(crops.reshape(m * n, *crops.shape[2:]), side)
    logp = torch.cat([F.log_softmax(observer(flat[i:i + batch]), 1)[:, label] for i in range(0, len(flat), batch)])
    return (-logp).view(m, n)


def select(crops: torch.Tensor, scores: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's best crop (the lowest score over its m crops), then the ``keep`` best images:
    (crops keep × C × s × s, their image positions)."""
    best, which = scores.min(0)
    order = torch.argsort(best)[:keep]
    return crops[which[order], order], order


def stitch(crops: torch.Tensor, n: int, side: int, factor: int) -> torch.Tensor:
    """Eq. 6: ``n`` images of ``side``², cell (i, j) of image t taken from crop (i·factor + j)·n + t,
    nearest-resized to its cell (the first ``side % factor`` rows and columns of cells one pixel larger)."""
    out = crops.new_zeros((n, crops.shape[1], side, side))
    base, extra, k, top = side // factor, side % factor, 0, 0
    for i in range(factor):
        hh = base + 1 if i < extra else base
        left = 0
        for j in range(factor):
            ww = base + 1 if j < extra else base
            out[:, :, top:top + hh, left:left + ww] = F.interpolate(crops[k * n:(k + 1) * n], size=(hh, ww))
            left, k = left + ww, k + 1
        top += hh
    return out


@register_condenser
class RDED(ReplayLabels, Condenser):
    """RDED: observer-scored real crops, stitched, with replay soft labels (module docstring)."""

    name = "rded"
    Config = RDEDConfig
    soft_labels = True
    default_run = False
    deviations = ("candidate images and crops come from seeded generators; crops are resized on tensors "
                  "(bilinear, antialiased) where the official code resizes with torchvision on tensors too",)

    def _condense(self, train, ipc, *, seed, device, progress):
        cfg = self.config
        c, (_, h, w) = len(train.classes), train.shape
        if h != w:
            raise ValueError(f"rded: square images only, {train.name} has {h}×{w}")
        side, per = h, ipc * cfg.factor ** 2
        pool = teacher_pool(train, cfg.teachers, TeacherRecipe.preset(cfg.teacher_recipe), seed=cfg.teacher_seed,
                            device=device, progress=progress)
        observer = pool[0].model
        g = generator(seed)
        images, sources, notes = [], [], []
        for k, members in enumerate(per_class_indices(train.labels, c)):
            cand = members[torch.randperm(len(members), generator=g)[:cfg.mipc]]
            if len(cand) < per:
                raise ValueError(f"rded: {train.name} class {k} has {len(members)} images; IPC {ipc} at factor "
                                 f"{cfg.factor} needs {per} candidates")
            x = train.normalize(train.images[cand].to(device))
            crops = random_square_crops(x, cfg.num_crop, side // cfg.factor, g)
            chosen, order = select(crops, realism_scores(observer, crops, k, side), per)
            images.append(stitch(chosen, ipc, side, cfg.factor))
            sources.append(cand[order.cpu()].view(cfg.factor ** 2, ipc).t())
        mean = torch.tensor(train.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(train.std, device=device).view(1, -1, 1, 1)
        pixels = (torch.cat(images) * std + mean).clamp(0, 1)
        stored = (pixels * 255).to(torch.uint8).cpu()  # truncated, as the official astype(np.uint8)
        if cfg.image_io == "jpeg":
            stored = jpeg_roundtrip(stored, cfg.jpeg_quality)
        labels = torch.arange(c).repeat_interleave(ipc)
        parts = {"kind": "images", "images": stored, "image_encoding": "uint8", "labels": labels}
        x = train.normalize(stored.to(device))
        dtype = getattr(torch, cfg.soft_label_dtype)
        attrs = {"space": "logits", "teachers": [cfg.teachers[0]], "rule": "the observer's eval-mode logits"}
        if cfg.soft_labels == "replay":
            rec, logits = replay_labels(lambda v: ensemble_logits(pool[:1], v, cfg.replay_batch), x, cfg.replay_epochs,
                                        cfg.replay_batch, generator(seed + 1), progress, desc="rded replay labels")
            parts.update(soft_labels=logits.cpu().to(dtype), soft_label_policy="replay", replay=rec,
                         replay_batch=cfg.replay_batch)
        else:
            parts.update(soft_labels=ensemble_logits(pool[:1], x, cfg.replay_batch).cpu().to(dtype), soft_label_policy="static")
        parts["soft_label_attrs"] = attrs
        extra = {"observer": cfg.teachers[0], "factor": cfg.factor, "num_crop": cfg.num_crop, "mipc": cfg.mipc,
                 "image_io": cfg.image_io + (f" (quality {cfg.jpeg_quality})" if cfg.image_io == "jpeg" else ""),
                 "source_indices": torch.cat(sources).tolist(), **pool_summary(pool)}
        return CondenseOutput(parts, extra=extra, deviations=tuple(notes), teacher=pool_costs(pool))

