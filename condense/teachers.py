"""A pool of pretrained teachers per dataset, trained on demand and cached (INFER and CV-DD).

A teacher is identified by the training split's fingerprint, the architecture (with its keyword
arguments), the recipe, the seed and the code that trains it (a hash of this module and the package
modules it imports: a teacher from older code is trained again, with a note, never reused); its
weights live in ``$CONDENSE_CACHE/teachers``. Training shows
a progress bar, checkpoints after every epoch and resumes from the last finished epoch when it was
interrupted. Each teacher records its ``val`` accuracy and training seconds.

Recipes: ``paper`` is the recipe INFER's teachers were trained with (SGD lr 0.1, momentum 0.9,
weight decay 5e-4, cosine over 200 epochs, batch 128, random crop + flip); ``quick`` is the same
recipe for 2 epochs (at least 200 steps on small sets), for CPUs and CI. Teachers are BatchNorm networks, because INFER and CV-DD match
BatchNorm statistics.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from . import _sources
from ._log import note, one_line
from ._paths import atomic_write, cache_dir
from .augment import CropFlip, black_level
from .budget import BatchStream, plan_steps, schedule_batches
from .checks import Rule, check_config
from .data import load_dataset
from .engine import Clock, Schedule, fit
from .memory import PeakMemory
from .models import create_model, list_models

# INFER uses ResNet-18, MobileNetV2, EfficientNet-B0 and ShuffleNet (its CIFAR models: MobileNetV2 and
# ShuffleNet-G2 built as condense/models/cifar.py builds them). The quick pool keeps four teachers (so
# the ipc_init arithmetic is the paper's) of different widths and depths that a CPU trains in minutes;
# the mobile networks cost ten times more per step on a CPU.
PAPER_POOL = ("resnet18", "mobilenetv2_cifar", "shufflenet_g2", "convnet_bn")
QUICK_POOL = ("convnet_bn", "convnet_bn-w64", "convnet_bn-w32", "convnet_bn-d2")


@dataclass(frozen=True)
class TeacherRecipe:
    """How a teacher is trained. ``paper``: INFER's (SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch
    128, 200 epochs, cosine per epoch, crop + flip); ``cvdd``: CV-DD's squeeze recipe (``squeeze.py``,
    ``squeeze_cifar10.sh``: Adam lr 1e-3, weight decay 1e-4, batch 512, 200 epochs, cosine per epoch,
    crop + flip); ``quick`` and ``tiny``: two epochs (at least 200 steps) and one (40 steps) for CPUs."""

    name: str = "paper"
    epochs: int = 200
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    augment: str = "crop-flip"
    min_steps: int = 0               # small sets: at least this many SGD steps (more epochs)
    optimizer: str = "sgd"           # sgd (with momentum) | adam

    @classmethod
    def preset(cls, name: str) -> "TeacherRecipe":
        if name == "paper":
            return cls()
        if name == "cvdd":
            return cls(name="cvdd", epochs=200, lr=1e-3, momentum=0.0, weight_decay=1e-4, batch_size=512,
                       optimizer="adam")
        if name in ("paper-short", "cvdd-short"):  # one GPU in minutes: the recipe at 8 epochs
            return replace(cls.preset(name.split("-")[0]), name=name, epochs=8)
        if name == "quick":
            return cls(name="quick", epochs=2, min_steps=200)
        if name == "tiny":  # smoke tests only
            return cls(name="tiny", epochs=1, min_steps=40)
        raise ValueError(f"unknown teacher recipe {name!r}; expected one of {', '.join(RECIPES)}")

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
    fresh_seconds: float = 0.0        # of train_seconds, the part spent in this call (a resumed teacher
    fresh_cpu_seconds: float = 0.0    # brings back earlier seconds that no clock of this call measured)


RECIPES = ("paper", "cvdd", "paper-short", "cvdd-short", "quick", "tiny")
SOFT_DTYPES = ("float16", "float32")  # what soft labels may be stored as (HDF5 has no bfloat16)


def check_pool_config(cfg, owner: str, **rules) -> None:
    """Validate a condenser config that names a teacher pool (``teachers``, ``teacher_recipe``,
    ``teacher_seed``) together with its own ``rules``; every teacher spec must name an image model."""
    check_config(cfg, owner, teachers=Rule(nonempty=True), teacher_recipe=Rule(choices=RECIPES),
                 teacher_seed=Rule(lo=0, hi=2 ** 63 - 1), **rules)
    known = list_models("images")
    for spec in cfg.teachers:
        try:
            name, _ = parse_arch(spec)
        except ValueError as e:
            raise ValueError(f"{owner}.teachers: {e}") from None
        if name not in known:
            raise ValueError(f"{owner}.teachers: unknown model {name!r} in {spec!r}; image models are "
                             f"{', '.join(known)}")


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


def teacher_code() -> str:
    """The hash of the sources that train a teacher: this module and every package module it imports
    (the models, the engine, the batch streams, the augmentation, the data loaders)."""
    return _sources.source_hash(_sources.closure(__name__))


def teacher_key(train, arch: str, recipe: TeacherRecipe, seed: int) -> str:
    """``<what>-<code>``: a hash of the split's fingerprint, the architecture, the recipe and the seed,
    then the first 8 digits of :func:`teacher_code`. A teacher trained by other code has the same
    first part and another second: it is trained again, never reused."""
    blob = json.dumps({"source": train.fingerprint, "arch": arch, "recipe": asdict(recipe), "seed": seed},
                      sort_keys=True)
    return f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}-{teacher_code()[:8]}"


def _paths(train, arch: str, key: str, write: bool = False) -> tuple[Path, Path]:
    folder = cache_dir("teachers", write=write)
    stem = f"{train.name}-{arch}-{key}"
    return folder / f"{stem}.pt", folder / f"{stem}.partial.pt"


def _older(train, arch: str, key: str, final: Path) -> list[Path]:
    """Cached teachers of the same split, architecture, recipe and seed trained by other code (an older
    key's file: the same first part of the key, another code part or none)."""
    what = key.split("-")[0]
    return sorted(p for p in final.parent.glob(f"{train.name}-{arch}-{what}*.pt")
                  if p != final and not p.name.endswith(".partial.pt"))


def _atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def _load_checkpoint(path: Path, device, required: dict[str, type]) -> dict | None:
    """A cached checkpoint, loaded as plain tensors and numbers (``weights_only=True``: nothing in
    the file can run), or None when it is missing or unusable -- then it is rebuilt, with a note."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(blob, dict):
            raise ValueError("not a checkpoint dictionary")
        for k, tp in required.items():
            v = blob.get(k)
            if not isinstance(v, tp) or isinstance(v, bool) or (isinstance(v, float) and not math.isfinite(v)):
                raise ValueError(f"field {k!r} is missing or not {tp.__name__}")
        return blob
    except Exception as e:  # noqa: BLE001 - any unreadable cache entry is rebuilt, never trusted
        note(f"teacher cache {path} is unusable ({type(e).__name__}: {one_line(e)[:160]}); training it again")
        return None


def _restore(model, blob: dict, path: Path) -> bool:
    try:
        model.load_state_dict(blob["state_dict"])
        return True
    except (RuntimeError, KeyError, TypeError) as e:
        note(f"teacher cache {path} does not fit the model ({one_line(e)[:160]}); training it again")
        return False


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
    device = torch.device(device)
    key = teacher_key(train, arch, recipe, seed)
    final, partial = _paths(train, arch, key)
    name, kw = parse_arch(arch)

    epochs = recipe.epochs_for(len(train))
    steps = math.ceil(len(train) / recipe.batch_size)
    schedule = Schedule(optimizer=recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                        kind="cosine-epoch", epochs=epochs, passes=epochs, steps_per_pass=steps)

    def fresh():
        torch.manual_seed(seed)
        m = create_model(name, train.shape, len(train.classes), **kw).to(device)
        return m, torch.Generator().manual_seed(seed)

    model, g = fresh()
    blob = _load_checkpoint(final, device, {"state_dict": dict, "val_acc": float, "train_seconds": float,
                                            "meta": dict})
    if blob is None and _older(train, arch, key, final):
        note(f"teacher {arch} of {train.name} in the cache was trained by other code (the sources of "
             f"condense.teachers or what it imports changed); training it again")
    if blob is not None and 0 <= blob["val_acc"] <= 100 and blob["train_seconds"] >= 0 \
            and _restore(model, blob, final):
        model.eval()
        cpu = blob.get("cpu_seconds")
        return Teacher(model, arch, blob["val_acc"], blob["train_seconds"], True, key, blob["meta"],
                       cpu if isinstance(cpu, float) and math.isfinite(cpu) and cpu >= 0 else None)
    final, partial = _paths(train, arch, key, write=True)  # the cache must take what we train
    model, g = fresh()
    start_epoch, before, before_cpu, opt_state = 0, 0.0, 0.0, None
    blob = _load_checkpoint(partial, device, {"state_dict": dict, "optimizer": dict, "epoch": int,
                                              "generator": torch.Tensor, "torch_rng": torch.Tensor,
                                              "train_seconds": float})
    if blob is not None and 0 < blob["epoch"] <= epochs:
        try:  # resume after an interruption
            model.load_state_dict(blob["state_dict"])
            schedule.build(model.parameters(), 0, blob["optimizer"])  # refuses a state that does not fit
            g.set_state(blob["generator"])
            torch.set_rng_state(blob["torch_rng"])
            start_epoch, before, opt_state = blob["epoch"], blob["train_seconds"], blob["optimizer"]
            before_cpu = float(blob.get("cpu_seconds", 0.0))
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            note(f"teacher cache {partial} does not resume ({one_line(e)[:160]}); training it from the start")
            (model, g), start_epoch, before, before_cpu, opt_state = fresh(), 0, 0.0, 0.0, None
    aug = CropFlip(flip=train.name not in ("digits", "mnist", "fashion-mnist", "svhn"), fill=black_level(train.mean, train.std))
    x_all, y_all = train.images.to(device), train.labels.to(device)
    clock = Clock(device)

    def loss_fn(idx):
        idx = idx.to(device)
        return F.cross_entropy(model(aug(train.normalize(x_all[idx]))), y_all[idx])

    def save(step: int, epoch: int, opt) -> None:  # after every epoch: an interrupted teacher resumes here
        _atomic_torch_save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                            "generator": g.get_state(), "torch_rng": torch.get_rng_state(),
                            "train_seconds": before + clock.total, "cpu_seconds": before_cpu + clock.cpu}, partial)

    plan = plan_steps("epochs", epochs - start_epoch, recipe.batch_size, len(train), None)
    stream = BatchStream(len(train), g)  # one seeded shuffle per epoch, drawn when the epoch starts
    batches = ((start_epoch + e, idx) for e, idx in schedule_batches(plan, lambda e: stream))
    with PeakMemory(device, exclusive=True) as memory:   # apart from the condensation that asked for it
        fit(model, batches, loss_fn, schedule, clock=clock, on_pass_end=save, start=start_epoch * steps,
            opt_state=opt_state, progress=progress, desc=f"teacher {arch}", where=f"teacher {arch}")
    seconds, cpu_seconds = before + clock.total, before_cpu + clock.cpu
    if val is None:
        val = load_dataset(train.name, "val")
    val_acc = accuracy_on(model, val, device)
    meta = {"arch": arch, "recipe": asdict(recipe), "seed": seed, "source_fingerprint": train.fingerprint,
            "code": teacher_code(), "val_acc": val_acc, "train_seconds": seconds, "cpu_seconds": cpu_seconds,
            "memory": memory.record()}
    _atomic_torch_save({"state_dict": model.state_dict(), "val_acc": val_acc, "train_seconds": seconds,
                        "cpu_seconds": cpu_seconds, "meta": meta}, final)
    partial.unlink(missing_ok=True)
    model.eval()
    return Teacher(model, arch, val_acc, seconds, False, key, meta, cpu_seconds, clock.total, clock.cpu)


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


@dataclass(frozen=True)
class TeacherCost:
    """The seconds a condenser reports for its teachers (docs/design.md §4: producing them is part of its cost).

    ``seconds`` (wall) and ``cpu_seconds`` count every teacher at its recorded cost, the same for every
    method that uses the pool; ``cpu_seconds`` is None when a teacher was trained before CPU time was
    recorded (no column mixes clocks). The ``fresh`` sums are the part spent in this call, which the
    condenser's own clocks already measured: a teacher resumed from a partial checkpoint counts only
    the epochs trained now."""

    seconds: float = 0.0
    cpu_seconds: float | None = 0.0
    fresh_seconds: float = 0.0
    fresh_cpu_seconds: float = 0.0


def pool_costs(pool: list[Teacher]) -> TeacherCost:
    """The :class:`TeacherCost` of a pool."""
    cpu = [t.cpu_seconds for t in pool]
    return TeacherCost(seconds=sum(t.train_seconds for t in pool),
                       cpu_seconds=None if any(c is None for c in cpu) else sum(cpu),
                       fresh_seconds=sum(t.fresh_seconds for t in pool),
                       fresh_cpu_seconds=sum(t.fresh_cpu_seconds for t in pool))


def pool_summary(pool: list[Teacher]) -> dict:
    """What a set's metadata records about its teachers."""
    return {"teachers": [{"arch": t.arch, "val_acc": round(t.val_acc, 3), "train_seconds": round(t.train_seconds, 3),
                          "cpu_seconds": None if t.cpu_seconds is None else round(t.cpu_seconds, 3),
                          "cached": t.cached, "key": t.key, "memory": t.meta.get("memory")} for t in pool]}


@torch.no_grad()
def ensemble_logits(pool: list[Teacher], x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The mean of the teachers' logits (INFER's static soft labels)."""
    outs = []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        outs.append(torch.stack([t.model(xb) for t in pool]).mean(0))
    return torch.cat(outs)
