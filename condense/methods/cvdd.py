"""CV-DD (Cui et al., 2025, "Dataset Distillation via Committee Voting").

Synthetic images are recovered against a *committee* of BatchNorm teachers from a pool, each member
weighted by a prior of how good its distilled data is (§3.2), and relabelled by the committee with
*batch-specific soft labels* (BSSL, §3.3): the teachers stay in train mode, so every BatchNorm layer
normalises with the synthetic batch's own statistics.

What the official code does, and this module with it:

- **Committee per IPC index**, chosen once, never per iteration (:mod:`.committee`): at IPC 1 the
  official hand-picked pair (CIFAR-10, ImageNette: MobileNetV2 + DenseNet-121; CIFAR-100:
  ShuffleNetV2 + MobileNetV2) or elsewhere the two best priors, at IPC 10 the pool's pairs in order
  (pair *i* for IPC index *i*), otherwise two members drawn at random per index. ``committee=1`` is
  the SRe2L++ ablation (the pool's first teacher alone, ResNet-18 in the paper pool).
- **Saved images** are JPEGs: ``recover.py`` truncates ``x·255`` to uint8 and saves each image with
  PIL at its default quality 75; relabelling and the student read the decoded files. ``image_io="jpeg"``
  does the same round-trip and stores the decoded uint8 pixels (storage counts those, not the JPEG
  bytes); ``image_io="lossless"`` keeps the truncated pixels.
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
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import evaluate
from .._paths import atomic_write, cache_dir
from ..checks import Rule
from ..data import load_dataset
from ..identity import code_identity
from ..protocols import get_protocol
from ..replay import crop_flip, resized_crop_box
from ..teachers import (QUICK_POOL, SOFT_DTYPES, TeacherRecipe, check_pool_config, pool_costs, pool_summary,
                        teacher_pool)
from ._common import BNStatLoss, CondenseOutput, ReplayLabels, jpeg_roundtrip, optimize_pixels, replay_labels
from .base import Condenser, generator, per_class_indices, register_condenser
from .committee import (IPC1_RULES, RELABEL_TEMPERATURE, SYNTHESIS_TEMPERATURE, committee_schedule,  # noqa: F401
                        committee_weights, official_ipc1_pair)

IMAGE_IO = ("jpeg", "lossless")
# recover.py: the roll range per dataset (4 on the CIFARs and Tiny-ImageNet, 32 on the 224-pixel ImageNets) and
# the classes recovered together (--batch-size in the recover scripts' constants.sh: 100 on Tiny-ImageNet,
# CIFAR-100 and ImageNet-1k, all ten on CIFAR-10 and ImageNette)
OFFICIAL_JITTER = {"cifar10": 4, "cifar100": 4, "tinyimagenet": 4, "imagenette": 32, "imagenet": 32}
OFFICIAL_CLASS_BATCH = {"tinyimagenet": 100, "cifar100": 100, "imagenet": 100}

BSSL_BATCH = 16


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


def crop_flip_roll(x: torch.Tensor, g: torch.Generator, jitter: int) -> torch.Tensor:
    """One RandomResizedCrop and one flip for the whole batch, then a roll of 0..``jitter`` pixels."""
    h, w = x.shape[-2:]
    box = torch.tensor(resized_crop_box(h, w, g), dtype=torch.int16)
    flip = torch.rand(1, generator=g) < 0.5
    out = crop_flip(x, box.expand(x.shape[0], 4), flip.expand(x.shape[0]))
    dx, dy = (int(v) for v in torch.randint(0, jitter + 1, (2,), generator=g))
    return torch.roll(out, shifts=(dx, dy), dims=(2, 3))


def member_terms(model, bn, x: torch.Tensor, y: torch.Tensor, group: int, r_bn: float) -> torch.Tensor:
    """One member's term of Eq. 6, ``CE + r_bn · BN``, for each batch of ``group`` images in ``x`` (one
    IPC index's batch; ``bn``: the member's :class:`BNStatLoss`, grouping the same batches)."""
    ce = F.cross_entropy(model(x), y, reduction="none").view(-1, group).mean(1)
    return ce + r_bn * bn.pop()


def committee_loss(models, weights: torch.Tensor, bn_losses, x: torch.Tensor, y: torch.Tensor,
                   r_bn: float) -> torch.Tensor:
    """Eq. 6 for one batch: ``Σ_k w_k (CE_k + r_bn · BN_k)`` (``bn_losses``: one :class:`BNStatLoss`
    per member, grouping the whole batch)."""
    total = x.new_zeros(())
    for model, w, bn in zip(models, weights.tolist(), bn_losses):
        total = total + w * member_terms(model, bn, x, y, x.shape[0], r_bn).sum()
    return total


def synthesize(models, committees, weights, x0: torch.Tensor, y: torch.Tensor, *, iterations: int, lr: float,
               betas=(0.5, 0.9), r_bn: float, first_bn_multiplier: float, jitter: int, lo: torch.Tensor,
               hi: torch.Tensor, g: torch.Generator, progress: bool = False, desc: str = "CV-DD") -> torch.Tensor:
    """Recover every IPC index's batch against its committee (§3.2, Eq. 6), all batches at once.

    ``x0`` holds ``len(committees)`` batches of C images (batch-major); batch *b* is optimised against
    the pool members ``committees[b]`` with weights ``weights[b]``. Each iteration draws the augmentation
    of :func:`crop_flip_roll` once per batch; every member sees the same augmented batch. Adam on the
    pixels (elementwise, so one optimiser over all batches is one per batch), cosine without warm-up,
    pixels clamped to [lo, hi] after each step. The teachers are frozen in eval mode, so batches never
    interact: this equals recovering each batch on its own, as the official code does."""
    nb = len(committees)
    c = x0.shape[0] // nb
    x = x0.clone().requires_grad_(True)
    roles = {}   # member -> (rows of the batches it votes on, its weight on each of those batches)
    for k in sorted({k for com in committees for k in com}):
        batches = [b for b, com in enumerate(committees) if k in com]
        rows = torch.cat([torch.arange(b * c, (b + 1) * c) for b in batches]).to(x.device)
        w = torch.tensor([float(weights[b][committees[b].index(k)]) for b in batches], device=x.device)
        roles[k] = (rows, w, BNStatLoss(models[k], c, first_bn_multiplier))

    def loss(it: int) -> torch.Tensor:
        xa = torch.cat([crop_flip_roll(xb, g, jitter) for xb in x.split(c)])
        total = x.new_zeros(())
        for k, (rows, w, bn) in roles.items():
            total = total + (w * member_terms(models[k], bn, xa[rows], y[rows], c, r_bn)).sum()
        return total

    try:
        optimize_pixels(x, loss, iterations=iterations, lr=lr, betas=betas, progress=progress, desc=desc,
                        after_step=lambda: x.copy_(torch.maximum(torch.minimum(x, hi), lo)))
    finally:
        for _, _, bn in roles.values():
            bn.close()
    return x.detach()


def train_mode_copies(models) -> list[nn.Module]:
    """Copies of the teachers in train mode whose BatchNorm layers normalise with the batch's own
    statistics and never update their running buffers (momentum 0)."""
    copies = []
    for m in models:
        c = copy.deepcopy(m).train()
        for mod in c.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.momentum = 0.0
        copies.append(c)
    return copies


@torch.no_grad()
def _bssl(copies, weights: list[float], x: torch.Tensor, batch: int) -> torch.Tensor:
    """BSSL logits of ``x`` in batches of ``batch``, each forwarded as two halves (split at len // 2)
    that BatchNorm normalises with their own statistics. (One pass over all halves with per-half
    statistics computes the same and was measured slower on CPUs.)"""
    out = []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch]
        half = xb.shape[0] // 2
        chunks = [xb[:half], xb[half:]] if half else [xb]
        out.append(sum(w * torch.cat([c(ch) for ch in chunks]) for c, w in zip(copies, weights)))
    return torch.cat(out)


def bssl_logits(models, weights: torch.Tensor, x: torch.Tensor, batch: int = BSSL_BATCH) -> torch.Tensor:
    """Batch-specific soft labels (§3.3): ``Σ_k w_k z_k`` with every teacher in train mode, so that its
    BatchNorm layers use the statistics of the synthetic batch, each batch of ``batch`` forwarded as
    two halves split at ``len // 2`` (the official relabelling). Runs on copies: the teachers' running
    statistics are not updated."""
    return _bssl(train_mode_copies(models), weights.tolist(), x, batch)


def relabel_replay(models, weights: torch.Tensor, x: torch.Tensor, epochs: int, batch: int, g: torch.Generator,
                   progress: bool = False) -> tuple[dict, torch.Tensor]:
    """FKD-style replay labels with BSSL (§3.3): for each epoch a seeded visiting order, a
    RandomResizedCrop (0.08–1) and flip per view and CutMix (β(1, 1)) per batch
    (:func:`condense.replay.draw`), and the committee's BSSL logits of exactly those views, in batches
    of ``batch``. Returns (the replay record, E×N×C logits)."""
    copies, wl = train_mode_copies(models), weights.tolist()
    return replay_labels(lambda views: _bssl(copies, wl, views, batch), x, epochs, batch, g, progress,
                         desc="BSSL replay labels")


# ----------------------------------------------------------------------------- the condensers

# The paper's pool in CIFAR form (ResNet-18, ResNet-50, ShuffleNetV2, MobileNetV2, DenseNet-121) and five
# BatchNorm ConvNets of different widths and depths that a CPU trains in minutes.
PAPER_POOL = ("resnet18", "resnet50", "shufflenetv2_x0_5", "mobilenetv2_cifar", "densenet121")
QUICK_POOL_CVDD = QUICK_POOL + ("convnet_bn-w64-d2",)
# The official relabelling scripts' priors (--model-weight), in the pool's order.
OFFICIAL_PRIORS = {"cifar10": (63.0, 65.3, 68.5, 67.6, 67.4)}
PRIOR_MODES = ("student", "val", "explicit")
LABEL_MODES = ("replay", "static")


@dataclass(frozen=True)
class CVDDConfig:
    teachers: tuple[str, ...] = PAPER_POOL
    teacher_recipe: str = "cvdd"     # CV-DD's own squeeze recipe (Adam); the quick preset: the quick recipe
    teacher_seed: int = 0
    committee: int = 2                # 1: SRe2L++ (the pool's first teacher alone)
    prior: str = "student"            # student | val | explicit
    priors: tuple[float, ...] = ()    # the explicit priors, one per teacher
    iterations: int = 4000
    lr: float = 0.25
    beta1: float = 0.5
    beta2: float = 0.9
    r_bn: float = 0.01
    first_bn_multiplier: float = 10.0
    jitter: int | None = None         # roll range; None: the scripts' per dataset (OFFICIAL_JITTER), else side/8
    class_batch: int | None = None    # classes per synthesis batch; None: the scripts' (100 on Tiny-ImageNet), else all
    soft_labels: str = "replay"       # replay: per-epoch BSSL labels of stored views | static: one per image
    replay_epochs: int = 300
    replay_batch: int = 16
    soft_label_dtype: str = "float16"
    prior_ipc: int = 10               # prior="student": the single-teacher sets' IPC
    prior_epochs: int = 100           # prior="student": their students' fkd epochs
    ipc1_rule: str = "official"       # official: the hand-picked IPC-1 pairs of recover.py | priors: two best
    image_io: str = "jpeg"            # jpeg: PIL's quality-75 round-trip, as recover.py saves | lossless
    jpeg_quality: int = 75

    def __post_init__(self):
        check_pool_config(self, "cvdd", committee=Rule(choices=(1, 2)), prior=Rule(choices=PRIOR_MODES),
                          iterations=Rule(lo=1, hi=10_000_000), lr=Rule(lo=0, lo_open=True),
                          beta1=Rule(lo=0, hi=1, hi_open=True), beta2=Rule(lo=0, hi=1, hi_open=True),
                          r_bn=Rule(lo=0), first_bn_multiplier=Rule(lo=0), jitter=Rule(lo=0, hi=1024),
                          soft_labels=Rule(choices=LABEL_MODES), replay_epochs=Rule(lo=1, hi=100_000),
                          replay_batch=Rule(lo=1, hi=100_000), soft_label_dtype=Rule(choices=SOFT_DTYPES),
                          prior_ipc=Rule(lo=1, hi=10_000), prior_epochs=Rule(lo=1, hi=100_000),
                          ipc1_rule=Rule(choices=IPC1_RULES), image_io=Rule(choices=IMAGE_IO), class_batch=Rule(lo=1),
                          jpeg_quality=Rule(lo=1, hi=95))
        if self.prior == "explicit" and len(self.priors) != len(self.teachers):
            raise ValueError(f"cvdd.priors: prior='explicit' needs one prior per teacher ({len(self.teachers)}), "
                             f"got {len(self.priors)}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.priors):
            raise ValueError(f"cvdd.priors must be finite numbers, got {list(self.priors)!r}")

    @classmethod
    def preset(cls, name: str):
        if name == "paper":
            return cls()
        return cls(teachers=QUICK_POOL_CVDD, teacher_recipe="quick", prior="val", iterations=500)


@register_condenser
class CVDD(ReplayLabels, Condenser):
    """CV-DD: committee-voted synthesis and BSSL replay labels (module docstring)."""

    name = "cvdd"
    Config = CVDDConfig
    soft_labels = True
    deviations = (
        "crops are resized on tensors (kornia, bilinear) where the official code resizes PIL images",
        "the real-patch initialisation (2×2 mosaics of four real images of the class) is rebuilt from the "
        "paper's figure: its code is not in the official repository",
    )

    def _condense(self, train, ipc, *, seed, device, progress):
        cfg = self.config
        c = len(train.classes)
        if cfg.committee > len(cfg.teachers):
            raise ValueError(f"{self.name}: a committee of {cfg.committee} needs a pool of at least {cfg.committee} "
                             f"teachers, got {len(cfg.teachers)}")
        priors0 = cfg.priors if cfg.prior == "explicit" else (0.0,) * len(cfg.teachers)
        committees = committee_schedule(priors0, ipc, cfg.committee, seed)  # refuses what it cannot serve early
        pool = teacher_pool(train, cfg.teachers, TeacherRecipe.preset(cfg.teacher_recipe), seed=cfg.teacher_seed,
                            device=device, progress=progress)
        priors, prior_info = self.priors(train, pool, device, progress)
        pair = official_ipc1_pair(cfg.teachers, train.name) if cfg.ipc1_rule == "official" else None
        committees = committee_schedule(priors, ipc, cfg.committee, seed, pair)
        images, src = self.recover(train, pool, priors, committees, ipc, seed, device, progress)
        labels = torch.arange(c).repeat(ipc)
        relabelers = sorted({k for com in committees for k in com}) if cfg.committee == 1 else list(range(len(pool)))
        w = committee_weights([priors[k] for k in relabelers], RELABEL_TEMPERATURE)
        models = [pool[k].model for k in relabelers]
        x = train.normalize(images.to(device))
        g = generator(seed + 1)
        parts = {"kind": "images", "images": images, "image_encoding": "uint8", "labels": labels}
        dtype = getattr(torch, cfg.soft_label_dtype)
        attrs = {"space": "logits", "teachers": [cfg.teachers[k] for k in relabelers],
                 "weights": [round(v, 6) for v in w.tolist()], "rule": "BSSL: the weighted sum of train-mode teacher logits"}
        if cfg.soft_labels == "replay":
            rec, logits = relabel_replay(models, w, x, cfg.replay_epochs, cfg.replay_batch, g, progress)
            parts.update(soft_labels=logits.cpu().to(dtype), soft_label_policy="replay", replay=rec,
                         replay_batch=cfg.replay_batch)
            attrs["views"] = "per epoch: RandomResizedCrop (0.08-1) + flip per view, CutMix beta(1, 1) per batch"
        else:
            order = torch.randperm(len(labels), generator=g)
            static = torch.empty(len(labels), c)
            static[order] = bssl_logits(models, w, x[order.to(device)], cfg.replay_batch).cpu()
            parts.update(soft_labels=static.to(dtype), soft_label_policy="static")
            attrs["views"] = "the stored images, one seeded shuffle, in batches of replay_batch"
        parts["soft_label_attrs"] = attrs
        extra = {"committees": [list(com) for com in committees], "priors": [round(float(p), 4) for p in priors],
                 "ipc1_committee": "official pair" if pair is not None else "two best priors",
                 "image_io": cfg.image_io + (f" (quality {cfg.jpeg_quality})" if cfg.image_io == "jpeg" else ""),
                 "prior_mode": prior_info, "relabel_teachers": [cfg.teachers[k] for k in relabelers],
                 "source_indices": src.tolist(), **pool_summary(pool)}
        return CondenseOutput(parts, extra=extra, teacher=pool_costs(pool))

    def recover(self, train, pool, priors, committees, ipc, seed, device, progress):
        """§3.2: real-patch initialisation, then the committee synthesis of every IPC index; returns
        uint8 images (batch-major: IPC index, then class) and the source indices of the patches."""
        cfg = self.config
        c = len(train.classes)
        g = generator(seed)
        mosaic, src = patch_init(train.images, train.labels, c, ipc, g)
        x0 = train.normalize(mosaic.round().clamp(0, 255).to(torch.uint8).to(device))
        y = torch.arange(c, device=device).repeat(ipc)
        mean = torch.tensor(train.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(train.std, device=device).view(1, -1, 1, 1)
        lo, hi = (0 - mean) / std, (1 - mean) / std
        weights = [committee_weights([priors[k] for k in com], SYNTHESIS_TEMPERATURE).tolist() for com in committees]
        jitter = cfg.jitter if cfg.jitter is not None else OFFICIAL_JITTER.get(train.name, max(1, train.shape[-1] // 8))
        per = min(c, cfg.class_batch or OFFICIAL_CLASS_BATCH.get(train.name, c))
        if c % per:
            raise ValueError(f"{self.name}.class_batch: {per} classes per synthesis batch must divide the {c} classes")
        chunks = c // per  # every IPC index recovered in chunks of `per` classes, each against that index's committee
        committees = [com for com in committees for _ in range(chunks)]
        weights = [w for w in weights for _ in range(chunks)]
        torch.manual_seed(seed)
        x = synthesize([t.model for t in pool], committees, weights, x0, y, iterations=cfg.iterations, lr=cfg.lr,
                       betas=(cfg.beta1, cfg.beta2), r_bn=cfg.r_bn, first_bn_multiplier=cfg.first_bn_multiplier,
                       jitter=jitter, lo=lo, hi=hi, g=g, progress=progress, desc=f"{self.name} synthesis")
        pixels = (x * std + mean).clamp(0, 1)
        images = (pixels * 255).to(torch.uint8).cpu()  # truncated, as recover.py's astype(np.uint8)
        if cfg.image_io == "jpeg":
            images = jpeg_roundtrip(images, cfg.jpeg_quality)
        return images, src

    def priors(self, train, pool, device, progress) -> tuple[tuple[float, ...], dict]:
        """The teachers' priors by ``prior`` mode, and what the set records about them."""
        cfg = self.config
        if cfg.prior == "explicit":
            return tuple(float(v) for v in cfg.priors), {"mode": "explicit"}
        if cfg.prior == "val":
            return tuple(float(t.val_acc) for t in pool), {"mode": "val", "what": "each teacher's own val accuracy"}
        return student_priors(self, train, pool, device, progress)


def _prior_key(cond: CVDD, train, pool) -> str:
    cfg = asdict(cond.config)
    for k in ("committee", "prior", "priors", "soft_labels", "replay_epochs"):
        cfg.pop(k, None)
    blob = json.dumps({"source": train.fingerprint, "teachers": [t.key for t in pool], "config": cfg,
                       "code": code_identity(__name__, parts=("version", "condenser"))}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def student_priors(cond: CVDD, train, pool, device, progress) -> tuple[tuple[float, ...], dict]:
    """``prior="student"`` (§3.2): each teacher's prior is the ``val`` accuracy of a student trained on
    the data that teacher distils alone (``prior_ipc`` images per class, its own BSSL replay labels,
    the ``fkd`` protocol for ``prior_epochs`` epochs, training seed 0). Computed once per pool and
    configuration and cached (``$CONDENSE_CACHE/cvdd-priors``)."""
    cfg = cond.config
    key = _prior_key(cond, train, pool)
    path = cache_dir() / "cvdd-priors" / f"{train.name}-{key}.json"
    try:
        blob = json.loads(path.read_text())
        if isinstance(blob, dict) and len(blob.get("priors", ())) == len(pool) and \
                all(isinstance(v, (int, float)) and 0 <= v <= 100 for v in blob["priors"]):
            return tuple(float(v) for v in blob["priors"]), {**blob["info"], "cached": True}
    except (OSError, ValueError):
        pass
    val = load_dataset(train.name, "val")
    priors, seconds = [], []
    for i, t in enumerate(pool):
        single = type(cond)(cfg, committee=1, prior="explicit", priors=(1.0,), teachers=(cfg.teachers[i],),
                            soft_labels="replay", replay_epochs=cfg.prior_epochs)
        start = time.perf_counter()
        s = single.condense(train, cfg.prior_ipc, seed=0, device=device, progress=progress)
        p = get_protocol("fkd", "quick", epochs=cfg.prior_epochs, batch_size=cfg.replay_batch)
        priors.append(evaluate.val_accuracy(s, val, p, device=device, progress=progress))
        seconds.append(round(time.perf_counter() - start, 3))
    info = {"mode": "student", "what": f"val accuracy of a ConvNet trained by fkd for {cfg.prior_epochs} epochs on "
                                       f"each teacher's own IPC-{cfg.prior_ipc} set", "seconds": seconds, "key": key}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data=json.dumps({"priors": priors, "info": info}, indent=1).encode())
    return tuple(priors), {**info, "cached": False}
