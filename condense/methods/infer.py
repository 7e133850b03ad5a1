"""INFER (Zhang et al., ICLR 2025, "Breaking Class Barriers: Efficient Dataset Distillation via
Inter-Class Feature Compensator").

Instead of one synthetic image per class, INFER adds a *universal feature compensator* (UFC) -- one
image-shaped tensor -- to natural images of every class (§3.2). Each init batch holds one real image
per class; each of the M teachers optimizes its own UFC for that batch (§3.3):

    min_u  CE(f_m(jitter(x + u)), y) + r_bn · Σ_l s_l (‖μ_l(x + u) − μ̂_l‖₂ + ‖σ²_l(x + u) − σ̂²_l‖₂)

with the teacher frozen in eval mode, batch statistics of each BatchNorm layer's input matched to its
running statistics, the first BN layer weighted s_0 = 10, Adam (β 0.5, 0.9), lr 0.25 with cosine
decay, and zero-initialized UFCs. Soft labels are the ensemble-average teacher logits of every
instance, stored once (static), and interpolated under mixup by the ``kd`` protocol (§3.4).

Budget (the official ``ipc_init`` arithmetic): ``ipc_init = int(ipc / (M/C + 1))`` real images per
class, so real images plus UFCs take ``ipc_init·C + M·ipc_init ≤ ipc·C`` image slots. The file stores
the real images, the UFCs and the soft labels as separate parts; composed instances ``clip(x + u)`` are
built at load time (``SyntheticSet.instances``), never stored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import Rule
from ..format import SyntheticSet
from ..teachers import (PAPER_POOL, QUICK_POOL, SOFT_DTYPES, TeacherRecipe, check_pool_config, ensemble_logits,
                        pool_costs, pool_summary, teacher_pool)
from ._common import BNStatLoss, CondenseOutput, optimize_pixels
from .base import Condenser, generator, per_class_indices, register_condenser


@dataclass(frozen=True)
class InferConfig:
    teachers: tuple[str, ...] = PAPER_POOL
    teacher_recipe: str = "paper"
    teacher_seed: int = 0
    iterations: int = 1000
    lr: float = 0.25
    beta1: float = 0.5
    beta2: float = 0.9
    r_bn: float = 1.0                 # the official CIFAR script's --r-bn
    first_bn_multiplier: float = 10.0
    jitter: int | None = None         # roll range; None: side/8 (4 on 32×32, as the paper)
    soft_label_dtype: str = "float16"

    def __post_init__(self):
        check_pool_config(self, "infer", iterations=Rule(lo=1, hi=10_000_000), lr=Rule(lo=0, lo_open=True),
                          beta1=Rule(lo=0, hi=1, hi_open=True), beta2=Rule(lo=0, hi=1, hi_open=True),
                          r_bn=Rule(lo=0), first_bn_multiplier=Rule(lo=0), jitter=Rule(lo=0, hi=1024),
                          soft_label_dtype=Rule(choices=SOFT_DTYPES))

    @classmethod
    def preset(cls, name: str) -> "InferConfig":
        if name == "paper":
            return cls()
        return cls(teachers=QUICK_POOL, teacher_recipe="quick", iterations=200)


def ipc_init(ipc: int, num_teachers: int, num_classes: int) -> int:
    """Real images per class that leave room for the UFCs: ``int(ipc / (M/C + 1))``."""
    return int(ipc / (num_teachers / num_classes + 1))


def optimize_ufcs(teacher: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: int, cfg: InferConfig,
                  g: torch.Generator, progress: bool = False, desc: str = "UFCs") -> torch.Tensor:
    """One UFC per init batch for this teacher, all batches optimized together.

    ``x`` holds ``groups`` init batches of C images each (batch-major). Groups never interact: the
    teacher runs in eval mode and every loss term is per group, so this equals optimizing each batch
    on its own, vectorized. Returns ``groups × ch × H × W`` UFCs in the standardized input space.
    """
    c = x.shape[0] // groups
    u = torch.zeros(groups, *x.shape[1:], device=x.device, requires_grad=True)
    bn = BNStatLoss(teacher, c, cfg.first_bn_multiplier)
    jitter = cfg.jitter if cfg.jitter is not None else max(1, x.shape[-1] // 8)

    def loss(it: int) -> torch.Tensor:
        inputs = x + u.repeat_interleave(c, dim=0)
        dx, dy = (int(v) for v in torch.randint(0, jitter + 1, (2,), generator=g))  # 0..jitter, as SRe2L
        out = teacher(torch.roll(inputs, shifts=(dx, dy), dims=(2, 3)))
        ce = F.cross_entropy(out, y, reduction="none").view(groups, c).mean(1)
        return (ce + cfg.r_bn * bn.pop()).sum()

    try:
        optimize_pixels(u, loss, iterations=cfg.iterations, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                        progress=progress, desc=desc)
    finally:
        bn.close()
    return u.detach()


def quantize_affine(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-compensator affine uint8 codes: ``u ≈ offset + scale · q`` (one image's bytes each)."""
    flat = u.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    scale = ((hi - lo) / 255.0).clamp_min(1e-12)
    q = torch.round((flat - lo[:, None]) / scale[:, None]).clamp(0, 255).to(torch.uint8)
    return q.view_as(u), scale.float(), lo.float()


@register_condenser
class Infer(Condenser):
    name = "infer"
    Config = InferConfig
    soft_labels = True
    deviations = (
        "EfficientNet-B0 is not in the teacher pool; a BatchNorm ConvNet takes its place",
        "UFCs are stored once as affine-quantized uint8 (one image of storage each) and composed at "
        "load time, where the official code writes every composed image as an 8-bit JPEG",
        "one random roll (jitter) per iteration is shared by all init batches optimized together",
    )

    def _condense(self, train, ipc, *, seed, device, progress):
        cfg = self.config
        recipe = TeacherRecipe.preset(cfg.teacher_recipe)
        c, m = len(train.classes), len(cfg.teachers)
        k = ipc_init(ipc, m, c)
        if k < 1:
            raise ValueError(f"INFER needs ipc_init = int(ipc / (M/C + 1)) >= 1, but ipc={ipc} with M={m} "
                             f"teachers and C={c} classes gives {ipc / (m / c + 1):.2f}; use ipc >= "
                             f"{math.ceil(m / c + 1)} or fewer teachers")
        pool = teacher_pool(train, cfg.teachers, recipe, seed=cfg.teacher_seed, device=device, progress=progress)
        idx = self.init_images(train, k, seed)                   # batch-major: batch b, class c
        x = train.normalize(train.images[idx].to(device))
        y = train.labels[idx].to(device)
        g = generator(seed)
        torch.manual_seed(seed)
        ufcs, owners = [], []
        for t_i, t in enumerate(pool):
            ufcs.append(optimize_ufcs(t.model, x, y, k, cfg, g, progress, f"UFCs for {t.arch}"))
            owners.append(torch.full((k,), t_i))
        u = torch.cat(ufcs)                                       # teacher-major: (m·k) × ch × H × W
        batch = torch.arange(k).repeat(m)
        q, scale, offset = quantize_affine(u.cpu())
        image_batch = torch.arange(k).repeat_interleave(c)
        parts = {"kind": "images", "images": train.images[idx].clone(), "image_encoding": "uint8",
                 "labels": train.labels[idx].clone(), "compensator_encoding": "affine-uint8",
                 "compensators": {"values": q, "scale": scale, "offset": offset, "batch": batch,
                                  "image_batch": image_batch, "teacher": torch.cat(owners)}}
        parts["soft_labels"], parts["soft_label_policy"] = self.instance_labels(train, parts, pool, device), "static"
        parts["soft_label_attrs"] = {"space": "logits", "rule": "mean of the teachers' logits per instance",
                                     "teachers": list(cfg.teachers)}
        return CondenseOutput(parts, extra={"ipc_init": k, "num_ufcs": int(u.shape[0]), "source_indices": idx.tolist(),
                                            **pool_summary(pool)}, teacher=pool_costs(pool))

    @staticmethod
    def init_images(train, k: int, seed: int) -> torch.Tensor:
        """``k`` random real images per class, arranged as ``k`` batches of one image per class."""
        g = generator(seed)
        per_class = [idx[torch.randperm(len(idx), generator=g)[:k]] for idx in
                     per_class_indices(train.labels, len(train.classes))]
        if min(len(p) for p in per_class) < k:
            raise ValueError(f"INFER needs {k} images of every class for ipc_init")
        return torch.stack(per_class, dim=1).flatten()           # (k, C) → batch-major

    def instance_labels(self, train, parts: dict, pool, device) -> torch.Tensor:
        """Ensemble-average logits of every instance (image alone, and with each of its UFCs)."""
        probe = SyntheticSet(kind="images", method=self.name, ipc=0, num_classes=len(train.classes),
                             class_names=train.classes, source_dataset=train.name, source_fingerprint="",
                             seed=0, mean=tuple(train.mean), std=tuple(train.std),
                             **{k: v for k, v in parts.items() if k != "kind"})
        x, _ = probe.instances()
        dtype = getattr(torch, self.config.soft_label_dtype)
        return ensemble_logits(pool, x.to(device)).cpu().to(dtype)

