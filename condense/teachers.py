"""A pool of pretrained teachers per dataset, trained on demand and cached (INFER and CV-DD).

A teacher is identified by the training split's fingerprint, the architecture (with its keyword
arguments), the recipe and the seed; its weights live in ``$CONDENSE_CACHE/teachers``. Training shows
a progress bar, checkpoints after every epoch and resumes from the last finished epoch when it was
interrupted. Each teacher records its ``val`` accuracy and training seconds.

Recipes: ``paper`` is the recipe INFER's teachers were trained with (SGD lr 0.1, momentum 0.9,
weight decay 5e-4, cosine over 200 epochs, batch 128, random crop + flip); ``quick`` is the same
recipe for 2 epochs (at least 500 steps on small sets), for CPUs and CI. Teachers are BatchNorm networks, because INFER and CV-DD match
BatchNorm statistics.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ._paths import cache_dir
from .models import create_model

# INFER uses ResNet-18, MobileNetV2, EfficientNet-B0 and ShuffleNet. The quick pool keeps four
# teachers (so the ipc_init arithmetic is the paper's) of different widths and depths that a CPU
# trains in minutes; MobileNetV2 and ShuffleNetV2 cost ten times more per step on a CPU, and
# MobileNetV2's downsampling leaves nothing to learn from 8×8 digits.
PAPER_POOL = ("resnet18", "mobilenetv2", "shufflenetv2", "convnet_bn")
QUICK_POOL = ("convnet_bn", "convnet_bn-w64", "convnet_bn-w32", "convnet_bn-d2")


@dataclass(frozen=True)
class TeacherRecipe:
    name: str = "paper"
    epochs: int = 200
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    augment: str = "crop-flip"
    min_steps: int = 0               # small sets: at least this many SGD steps (more epochs)

    @classmethod
    def preset(cls, name: str) -> "TeacherRecipe":
        if name == "paper":
            return cls()
        if name == "quick":
            return cls(name="quick", epochs=2, min_steps=500)
        if name == "tiny":  # smoke tests only
            return cls(name="tiny", epochs=1, min_steps=40)
        raise ValueError(f"unknown teacher recipe {name!r}; expected quick, paper or tiny")

    def epochs_for(self, n: int) -> int:
        return max(self.epochs, math.ceil(self.min_steps / math.ceil(n / self.batch_size)))


@dataclass
class Teacher:
    model: torch.nn.Module
    arch: str
    val_acc: float
    train_seconds: float
    cached: bool
    key: str
    meta: dict = field(default_factory=dict)
    cpu_seconds: float | None = None  # process CPU time of training (None: trained before it was recorded)


def parse_arch(spec: str) -> tuple[str, dict]:
    """``"convnet_bn-w64"`` → (``convnet_bn``, ``{"width": 64}``); ``-dN`` sets the depth."""
    name, *mods = spec.split("-")
    kw: dict = {}
    for m in mods:
        if m[:1] == "w" and m[1:].isdigit():
            kw["width"] = int(m[1:])
        elif m[:1] == "d" and m[1:].isdigit():
            kw["depth"] = int(m[1:])
        else:
            raise ValueError(f"bad teacher spec {spec!r}: unknown modifier {m!r}")
    return name, kw


def teacher_key(train, arch: str, recipe: TeacherRecipe, seed: int) -> str:
    blob = json.dumps({"source": train.fingerprint, "arch": arch, "recipe": asdict(recipe), "seed": seed},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _paths(train, arch: str, key: str) -> tuple[Path, Path]:
    folder = cache_dir("teachers")
    stem = f"{train.name}-{arch}-{key}"
    return folder / f"{stem}.pt", folder / f"{stem}.partial.pt"


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def accuracy_on(model, data, device, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        x = data.normalize(data.images[i:i + batch_size].to(device))
        correct += int((model(x).argmax(1) == data.labels[i:i + batch_size].to(device)).sum())
    return 100.0 * correct / max(1, len(data))


def train_teacher(train, arch: str, recipe: TeacherRecipe, *, seed: int = 0, device="cpu", val=None,
                  progress: bool = False) -> Teacher:
    """The cached teacher for (split, arch, recipe, seed), training (or resuming) it if needed."""
    from tqdm.auto import tqdm

    from .augment import CropFlip

    device = torch.device(device)
    key = teacher_key(train, arch, recipe, seed)
    final, partial = _paths(train, arch, key)
    name, kw = parse_arch(arch)
    torch.manual_seed(seed)
    model = create_model(name, train.shape, len(train.classes), **kw).to(device)
    if final.exists():
        blob = torch.load(final, map_location=device, weights_only=False)
        model.load_state_dict(blob["state_dict"])
        model.eval()
        return Teacher(model, arch, blob["val_acc"], blob["train_seconds"], True, key, blob["meta"],
                       blob.get("cpu_seconds"))
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    g = torch.Generator().manual_seed(seed)
    start_epoch, seconds, cpu_seconds = 0, 0.0, 0.0
    if partial.exists():  # resume after an interruption
        blob = torch.load(partial, map_location=device, weights_only=False)
        model.load_state_dict(blob["state_dict"])
        opt.load_state_dict(blob["optimizer"])
        g.set_state(blob["generator"])
        torch.set_rng_state(blob["torch_rng"])
        start_epoch, seconds, cpu_seconds = blob["epoch"], blob["train_seconds"], blob.get("cpu_seconds", 0.0)
    aug = CropFlip(flip=train.name not in ("digits", "mnist", "fashion-mnist", "svhn"))
    x_all, y_all = train.images.to(device), train.labels.to(device)
    steps, epochs = math.ceil(len(train) / recipe.batch_size), recipe.epochs_for(len(train))
    bar = tqdm(total=epochs * steps, initial=start_epoch * steps, disable=not progress, leave=False,
               desc=f"teacher {arch}", unit="step")
    for epoch in range(start_epoch, epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        lr = 0.5 * recipe.lr * (1 + math.cos(math.pi * epoch / epochs))  # cosine, per epoch
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        for idx in torch.randperm(len(train), generator=g).split(recipe.batch_size):
            idx = idx.to(device)
            x = aug(train.normalize(x_all[idx]))
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
        seconds += time.perf_counter() - t0
        cpu_seconds += time.process_time() - c0
        _atomic_torch_save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                            "generator": g.get_state(), "torch_rng": torch.get_rng_state(),
                            "train_seconds": seconds, "cpu_seconds": cpu_seconds}, partial)
    bar.close()
    if val is None:
        from .data import load_dataset

        val = load_dataset(train.name, "val")
    val_acc = accuracy_on(model, val, device)
    meta = {"arch": arch, "recipe": asdict(recipe), "seed": seed, "source_fingerprint": train.fingerprint,
            "val_acc": val_acc, "train_seconds": seconds, "cpu_seconds": cpu_seconds}
    _atomic_torch_save({"state_dict": model.state_dict(), "val_acc": val_acc, "train_seconds": seconds,
                        "cpu_seconds": cpu_seconds, "meta": meta}, final)
    partial.unlink(missing_ok=True)
    model.eval()
    return Teacher(model, arch, val_acc, seconds, False, key, meta, cpu_seconds)


def teacher_pool(train, archs, recipe: TeacherRecipe, *, seed: int = 0, device="cpu", progress: bool = False):
    """Teachers for every arch (cached or trained now), in eval mode with frozen parameters."""
    val = None
    pool = []
    for arch in archs:
        t = train_teacher(train, arch, recipe, seed=seed, device=device, val=val, progress=progress)
        for p in t.model.parameters():
            p.requires_grad_(False)
        t.model.eval()
        pool.append(t)
    return pool


def pool_costs(pool: list[Teacher]) -> dict[str, float]:
    """The seconds a condenser reports for its teachers (DESIGN §4: producing them is part of its cost).

    ``teacher_seconds`` counts every teacher; the ``fresh`` sums count those trained in this call,
    whose time the condenser's own clocks already include. Teachers cached before CPU time was
    recorded count their wall seconds on the CPU clock."""
    cpu = [t.cpu_seconds if t.cpu_seconds is not None else t.train_seconds for t in pool]
    return {"teacher_seconds": sum(t.train_seconds for t in pool),
            "teacher_wall_seconds": sum(t.train_seconds for t in pool if not t.cached),
            "teacher_cpu_seconds": sum(cpu),
            "teacher_fresh_cpu_seconds": sum(c for c, t in zip(cpu, pool) if not t.cached)}


def pool_summary(pool: list[Teacher]) -> dict:
    """What a set's metadata records about its teachers."""
    return {"teachers": [{"arch": t.arch, "val_acc": round(t.val_acc, 3), "train_seconds": round(t.train_seconds, 3),
                          "cpu_seconds": None if t.cpu_seconds is None else round(t.cpu_seconds, 3),
                          "cached": t.cached, "key": t.key} for t in pool]}


@torch.no_grad()
def ensemble_logits(pool: list[Teacher], x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The mean of the teachers' logits (INFER's static soft labels)."""
    outs = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        outs.append(torch.stack([t.model(xb) for t in pool]).mean(0))
    return torch.cat(outs)
