"""Expert trajectories for MTT (Cazenavette et al., CVPR 2022, §3.1 and the official ``buffer.py``).

An expert is a network of the distillation architecture trained on the real training split from a
fresh initialisation, its parameters saved after every epoch: a trajectory θ*_0, θ*_1, ..., θ*_E.
The official recipe (``buffer.py``): SGD at lr 0.01 without momentum or weight decay, batch 256, 50
epochs, DSA augmentation (one family per batch, per-image parameters) on the images as the
distillation sees them (standardized, or ZCA-whitened).

Each expert is cached like a teacher (:mod:`condense.teachers`): its key hashes the split's
fingerprint, the architecture, the recipe, the input space (``zca`` record or standardization), the
expert's seed and the code that trains it (this module and what it imports), so an expert from older
code is trained again, never reused. A file holds plain tensors (loaded with ``weights_only=True``):
the trajectory as an (E+1) × P float32 matrix of flattened parameters, in ``model.parameters()``
order. Training writes a partial file after every epoch and resumes from it.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import trange

from . import _sources
from ._log import note, one_line
from ._paths import atomic_write, cache_dir
from .augment import DSA
from .checks import Rule, check_config
from .memory import PeakMemory
from .models import create_model
from .teachers import TeacherCost, pool_costs


@dataclass(frozen=True)
class ExpertRecipe:
    """How an expert trains (``buffer.py``'s defaults): ``epochs`` 50, SGD ``lr`` 0.01, ``momentum``
    0, ``weight_decay`` 0, ``batch_size`` 256, DSA on. ``width`` is the ConvNet's (128 in MTT)."""

    arch: str = "convnet"
    width: int = 128
    epochs: int = 50
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    dsa: bool = True

    def __post_init__(self):
        check_config(self, "expert recipe", width=Rule(lo=1, hi=4096), epochs=Rule(lo=1, hi=10_000),
                     lr=Rule(lo=0, lo_open=True), momentum=Rule(lo=0, hi=1, hi_open=True),
                     weight_decay=Rule(lo=0), batch_size=Rule(lo=1, hi=1_000_000))

    def model(self, shape, num_classes: int) -> torch.nn.Module:
        return create_model(self.arch, shape, num_classes, width=self.width)


@dataclass
class Trajectory:
    params: torch.Tensor      # (epochs + 1) × P, float32, on the CPU
    train_seconds: float      # named as a Teacher's, so that teachers.pool_costs counts a buffer
    cpu_seconds: float
    cached: bool
    key: str
    fresh_seconds: float = 0.0
    fresh_cpu_seconds: float = 0.0


class NoExpertError(RuntimeError):
    """An expert is missing from the cache and training was not allowed."""


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    """The model's parameters as one float32 vector, in ``model.parameters()`` order."""
    return torch.cat([p.detach().reshape(-1).float().cpu() for p in model.parameters()])


def expert_code() -> str:
    """The hash of the sources that train an expert (this module and the package modules it imports)."""
    return _sources.source_hash(_sources.closure(__name__))


def expert_key(train, recipe: ExpertRecipe, space: dict, seed: int) -> str:
    """``<what>-<code>``, as :func:`condense.teachers.teacher_key`: the split, the recipe, the input
    space and the seed, then the first 8 digits of :func:`expert_code`."""
    blob = json.dumps({"source": train.fingerprint, "recipe": asdict(recipe), "space": space, "seed": seed},
                      sort_keys=True)
    return f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}-{expert_code()[:8]}"


def _load(path, need_epochs: int | None = None) -> dict | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        t = blob["trajectory"]
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or not torch.isfinite(t).all():
            raise ValueError("the trajectory is not a finite matrix")
        if need_epochs is not None and t.shape[0] != need_epochs + 1:
            raise ValueError(f"{t.shape[0] - 1} epochs, expected {need_epochs}")
        for k in ("seconds", "cpu_seconds"):
            if not isinstance(blob.get(k), float) or not math.isfinite(blob[k]) or blob[k] < 0:
                raise ValueError(f"field {k!r} is missing or not a non-negative number")
        return blob
    except Exception as e:  # noqa: BLE001 - an unreadable cache entry is rebuilt, never trusted
        note(f"expert cache {path} is unusable ({type(e).__name__}: {one_line(e)[:160]}); training it again")
        return None


def train_expert(train, x: torch.Tensor, y: torch.Tensor, recipe: ExpertRecipe, space: dict, *, seed: int,
                 device, allow_train: bool = True, progress: bool = False) -> Trajectory:
    """The cached trajectory of expert ``seed`` on ``x`` (the images as the distillation sees them, on
    ``device``) and ``y``, trained (or resumed) if missing; :class:`NoExpertError` when it is missing
    and ``allow_train`` is False."""
    key = expert_key(train, recipe, space, seed)
    stem = f"{train.name}-{recipe.arch}-w{recipe.width}-{key}"
    final = cache_dir("experts", write=False) / f"{stem}.pt"
    blob = _load(final, recipe.epochs)
    if blob is not None:
        return Trajectory(blob["trajectory"], blob["seconds"], blob["cpu_seconds"], True, key)
    if not allow_train:
        raise NoExpertError(f"mtt: expert {seed} of {train.name} ({recipe.arch} width {recipe.width}, "
                            f"{recipe.epochs} epochs) is not in the expert cache and training is not allowed")
    folder = cache_dir("experts")
    final, partial = folder / f"{stem}.pt", folder / f"{stem}.partial.pt"
    torch.manual_seed(seed)
    model = recipe.model(train.shape, len(train.classes)).to(device)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    points, start, before, before_cpu = [flat_params(model)], 0, 0.0, 0.0
    part = _load(partial)
    if part is not None and isinstance(part.get("state"), dict) and 0 < part["trajectory"].shape[0] - 1 < recipe.epochs:
        try:
            model.load_state_dict(part["state"])
            opt.load_state_dict(part["optimizer"])
            g.set_state(part["generator"])
            torch.set_rng_state(part["torch_rng"])
            points = list(part["trajectory"])
            start, before, before_cpu = len(points) - 1, part["seconds"], part["cpu_seconds"]
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            note(f"expert cache {partial} does not resume ({one_line(e)[:160]}); training it from the start")
    aug = DSA.for_dataset(train.name) if recipe.dsa else None
    n = x.shape[0]
    wall, cpu = time.perf_counter(), time.process_time()
    model.train()
    with PeakMemory(device, exclusive=True):
        for epoch in trange(start, recipe.epochs, disable=not progress, desc=f"expert {seed}", leave=False):
            order = torch.randperm(n, generator=g)
            for i in range(0, n, recipe.batch_size):
                idx = order[i:i + recipe.batch_size].to(x.device)
                xb = x[idx]
                loss = F.cross_entropy(model(aug(xb) if aug is not None else xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            points.append(flat_params(model))
            seconds, cpu_s = before + time.perf_counter() - wall, before_cpu + time.process_time() - cpu
            if epoch + 1 < recipe.epochs:
                atomic_write(partial, lambda fh: torch.save(
                    {"trajectory": torch.stack(points), "state": model.state_dict(), "optimizer": opt.state_dict(),
                     "generator": g.get_state(), "torch_rng": torch.get_rng_state(), "seconds": seconds,
                     "cpu_seconds": cpu_s}, fh))
    fresh, fresh_cpu = time.perf_counter() - wall, time.process_time() - cpu
    traj = torch.stack(points)
    meta = {"recipe": asdict(recipe), "space": space, "seed": seed, "source_fingerprint": train.fingerprint,
            "code": expert_code()}
    atomic_write(final, lambda fh: torch.save({"trajectory": traj, "seconds": before + fresh,
                                               "cpu_seconds": before_cpu + fresh_cpu, "meta": json.dumps(meta)}, fh))
    partial.unlink(missing_ok=True)
    return Trajectory(traj, before + fresh, before_cpu + fresh_cpu, False, key, fresh, fresh_cpu)


def expert_buffer(train, x, y, recipe: ExpertRecipe, space: dict, count: int, *, seed: int = 0, device="cpu",
                  allow_train: bool = True, progress: bool = False) -> tuple[list[Trajectory], TeacherCost]:
    """``count`` experts (seeds ``seed`` .. ``seed + count - 1``) and their cost, counted as a teacher
    pool's is (docs/design.md §4: producing them is part of the method's cost)."""
    experts = [train_expert(train, x, y, recipe, space, seed=seed + i, device=device, allow_train=allow_train,
                            progress=progress) for i in range(count)]
    return experts, pool_costs(experts)
