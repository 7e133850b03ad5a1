"""CV-DD's committee (Cui et al., 2025, §3.2): who votes for each IPC index, and with what weight.

- **Weights** ``softmax(prior / T)`` (Eq. 5): T = 5 for synthesis, 10 for relabelling.
- **Members per IPC index**, as the official ``recover.py`` chooses them (its ``model_setting``):
  - IPC 1 (setting 4): a hand-picked pair on CIFAR-10 and ImageNette (MobileNetV2 + DenseNet-121) and
    on CIFAR-100 (ShuffleNetV2 + MobileNetV2); the two best priors on every other dataset
    (Tiny-ImageNet, ImageNet-1k). ``ipc1_rule="priors"`` takes the two best priors everywhere.
  - IPC 10 (setting 5): pair *i* of the pool's ten pairs, in order, for IPC index *i*.
  - otherwise (IPC 50): two members drawn at random per index.
"""
from __future__ import annotations

import itertools

import torch

from .base import generator

SYNTHESIS_TEMPERATURE = 5.0
RELABEL_TEMPERATURE = 10.0
IPC1_RULES = ("official", "priors")
# recover.py, model_setting 4: the hand-picked IPC-1 pairs, by architecture family
IPC1_PAIRS = {"cifar10": ("mobilenetv2", "densenet121"), "imagenette": ("mobilenetv2", "densenet121"),
              "cifar100": ("shufflenetv2", "mobilenetv2")}


def committee_weights(priors, temperature: float) -> torch.Tensor:
    """``softmax(prior / T)`` over the committee's priors (Eq. 5)."""
    return torch.softmax(torch.as_tensor(priors, dtype=torch.float64) / temperature, 0).float()


def family(arch: str) -> str:
    """An architecture's family: ``mobilenetv2_cifar`` and ``mobilenetv2`` are both ``mobilenetv2``."""
    return arch.split("_")[0].split("-")[0]


def official_ipc1_pair(teachers, dataset: str) -> tuple[int, int] | None:
    """The pool indices of the official IPC-1 pair on ``dataset``, or None where the official code takes
    the two best priors (no hand-picked pair for the dataset) or the pool lacks the pair's families."""
    fams = IPC1_PAIRS.get(dataset)
    if fams is None:
        return None
    idx = [next((i for i, t in enumerate(teachers) if family(t) == f), None) for f in fams]
    return None if None in idx else tuple(sorted(idx))


def committee_schedule(priors, ipc: int, size: int = 2, seed: int = 0,
                       pair: tuple[int, int] | None = None) -> list[tuple[int, ...]]:
    """The committee (indices into the pool) of every IPC index, as the official scripts choose it.

    ``size=1`` (SRe2L++): the pool's first teacher for every index (ResNet-18 in the paper pool, the
    official SRe2L++ teacher). ``size=2``: at IPC 1 ``pair`` where given (:func:`official_ipc1_pair`),
    else the two best priors; at IPC 10 pair *i* of the pool's pairs in order (a pool of five has
    exactly ten); otherwise two members drawn at random (seeded) per index, as at IPC 50."""
    m = len(priors)
    if size not in (1, 2):
        raise ValueError(f"CV-DD's committee has 1 (SRe2L++) or 2 members, got {size}")
    if size > m:
        raise ValueError(f"a committee of {size} needs a pool of at least {size} teachers, got {m}")
    if size == 1:
        return [(0,)] * ipc
    if ipc == 1:
        if pair is not None:
            return [tuple(sorted(pair))]
        best = sorted(range(m), key=lambda i: (-float(priors[i]), i))
        return [tuple(sorted(best[:size]))]
    if ipc == 10:
        pairs = list(itertools.combinations(range(m), 2))
        if len(pairs) < 10:
            raise ValueError(f"CV-DD's IPC-10 committees are the pool's pairs, one per IPC index, and a pool of "
                             f"{m} teachers has {len(pairs)} pairs; use a pool of at least 5")
        return pairs[:10]
    g = generator(seed)
    return [tuple(sorted(torch.randperm(m, generator=g)[:size].tolist())) for _ in range(ipc)]
