"""RS2: Repeated Random Sampling (Okanovic et al., ICLR 2024, "Repeated Random Sampling for
Minimizing the Time-to-Accuracy of Learning").

Instead of one static subset, every round (epoch) trains on a fresh random subset of the full
training set (§3, Algorithm 1). The file stores the whole index schedule (rounds × subset size) and
binds it to the source split by fingerprint; nothing is condensed, and the set is marked as touching
the full training set.

- **Without replacement** (the paper's default, "RS2 w/o replacement"): shuffle once and take
  consecutive windows; when a pass is exhausted, reshuffle. Every example is seen exactly once per
  pass. A window that straddles two passes takes the tail of one and the head of the next, and the
  next permutation puts the tail's examples last so no round repeats an example.
- **With replacement** ("RS2 w/ replacement"): each round is an independent draw, without repeats
  inside the round.
- **Stratified**: each class contributes its quota to every round (IPC per class at IPC budgets, or
  ``round(fraction · n_c)``); the two samplers above then run per class.

``sampler="official"`` (the default) is what the official scripts run: at IPC budgets
(``scripts/run_dataset_distillation.sh``: DeepCore's ``Uniform`` selection, balanced, drawn anew
every epoch) each round is an independent class-balanced draw without repeats inside the round,
i.e. with replacement across rounds; at selection ratios (``run_timeToAcc_cifar10.sh``:
``UniformNoReplacement``, ``balance=False``) RS2 without replacement over the whole split, one
unstratified permutation at a time, the protocol dropping each round's last partial batch
(``rs2-ratio``, ``drop_last``). The other samplers are available by name (``without-replacement``,
``with-replacement``), and so is stratification (``stratified=True`` or ``False``; None, the
default, follows the scripts: stratified at IPC budgets, not at ratios).

The number of rounds follows the evaluation protocol's epochs (``for_protocol``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..checks import Rule, check_config
from ._common import CondenseOutput
from .base import Condenser, generator, per_class_indices, register_condenser


SAMPLERS = ("official", "without-replacement", "with-replacement")


@dataclass(frozen=True)
class RS2Config:
    rounds: int = 1000              # the paper's IPC-budget setting: 1000 rounds
    sampler: str = "official"       # official: with replacement at IPC budgets, without at ratios
    stratified: bool | None = None  # class-balanced rounds; None: as the scripts (at IPC budgets, not at ratios)
    fraction: float | None = None   # selection-ratio setting: subset = fraction of the split

    def __post_init__(self):
        check_config(self, "rs2", rounds=Rule(lo=1, hi=10_000_000), sampler=Rule(choices=SAMPLERS),
                     fraction=Rule(lo=0, hi=1, lo_open=True))

    @property
    def replacement(self) -> bool:
        """Whether rounds are drawn independently (with replacement across rounds)."""
        if self.sampler == "official":
            return self.fraction is None
        return self.sampler == "with-replacement"

    @property
    def balanced(self) -> bool:
        """Whether each class gets its quota in every round."""
        return self.fraction is None if self.stratified is None else self.stratified

    @classmethod
    def preset(cls, name: str) -> "RS2Config":
        return cls(rounds=1000 if name == "paper" else 300)


def windows_without_replacement(pool: torch.Tensor, k: int, rounds: int, g: torch.Generator) -> torch.Tensor:
    """``rounds`` windows of ``k`` items from ``pool``: consecutive slices of successive permutations.

    Each pass over the pool is a fresh permutation, so every item appears once per pass; items of a
    window that straddles two passes are moved to the end of the next permutation (no repeats).
    """
    n = pool.numel()
    if not 0 < k <= n:
        raise ValueError(f"subset size {k} must lie in [1, {n}]")
    out = torch.empty(rounds, k, dtype=torch.long)
    perm, pos = pool[torch.randperm(n, generator=g)], 0
    for r in range(rounds):
        take = perm[pos:pos + k]
        pos += take.numel()
        if take.numel() < k:  # the pass is exhausted: reshuffle, keeping the tail's items for last
            nxt = pool[torch.randperm(n, generator=g)]
            in_tail = torch.isin(nxt, take)
            perm = torch.cat([nxt[~in_tail], nxt[in_tail]])
            pos = k - take.numel()
            take = torch.cat([take, perm[:pos]])
        elif pos == n:
            perm, pos = pool[torch.randperm(n, generator=g)], 0
        out[r] = take
    return out


def draws_with_replacement(pool: torch.Tensor, k: int, rounds: int, g: torch.Generator) -> torch.Tensor:
    """``rounds`` independent draws of ``k`` distinct items from ``pool``."""
    n = pool.numel()
    if not 0 < k <= n:
        raise ValueError(f"subset size {k} must lie in [1, {n}]")
    return torch.stack([pool[torch.randperm(n, generator=g)[:k]] for _ in range(rounds)])


def rs2_schedule(labels: torch.Tensor, num_classes: int, per_class: list[int] | int, rounds: int,
                 seed: int, replacement: bool = False, stratified: bool = True) -> torch.Tensor:
    """The rounds × n index schedule (Algorithm 1 of the paper, with the samplers above)."""
    g = generator(seed)
    draw = draws_with_replacement if replacement else windows_without_replacement
    if not stratified:
        k = per_class if isinstance(per_class, int) else sum(per_class)
        return draw(torch.arange(labels.numel()), k, rounds, g)
    quotas = [per_class] * num_classes if isinstance(per_class, int) else per_class
    parts = [draw(idx, min(q, idx.numel()), rounds, g)
             for idx, q in zip(per_class_indices(labels, num_classes), quotas) if q > 0 and idx.numel()]
    return torch.cat(parts, dim=1)


@register_condenser
class RS2(Condenser):
    name = "rs2"
    Config = RS2Config
    touches_full_data = True

    def for_protocol(self, protocol) -> "RS2":
        """One round per pass of the protocol (its epochs; DC's loop makes E+1 passes)."""
        if protocol.passes == self.config.rounds:
            return self
        return RS2(replace(self.config, rounds=protocol.passes))

    def _condense(self, train, ipc, *, seed, device, progress):
        cfg = self.config
        labels, c = train.labels, len(train.classes)
        if cfg.fraction is not None:
            if not 0 < cfg.fraction <= 1:
                raise ValueError(f"rs2 fraction must lie in (0, 1], got {cfg.fraction}")
            counts = torch.bincount(labels, minlength=c)
            quota = [max(1, round(cfg.fraction * int(n))) for n in counts] if cfg.balanced else \
                max(1, round(cfg.fraction * labels.numel()))
        else:
            quota = ipc if cfg.balanced else ipc * c
        idx = rs2_schedule(labels, c, quota, cfg.rounds, seed, cfg.replacement, cfg.balanced)
        dtype = torch.int32 if len(train) < 2 ** 31 else torch.int64
        sampler = ("with" if cfg.replacement else "without") + " replacement" + \
            (", stratified" if cfg.balanced else "") + (" (official)" if cfg.sampler == "official" else "")
        return CondenseOutput({"kind": "subset-schedule", "indices": idx.to(dtype), "source_size": len(train)},
                              extra={"subset_size": int(idx.shape[1]), "rounds": cfg.rounds, "sampler": sampler})
