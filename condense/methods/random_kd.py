"""``random-kd``: random real images with the teacher pool's static soft labels.

The fair baseline for soft-label methods (INFER, CV-DD) under the ``kd`` protocol: the same teachers
label IPC random real images per class with their ensemble-average logits, so any gain a method shows
over it comes from its images, not from the soft labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import Rule
from ..teachers import (PAPER_POOL, QUICK_POOL, SOFT_DTYPES, TeacherRecipe, check_pool_config, ensemble_logits,
                        pool_costs, pool_summary, teacher_pool)
from ._common import CondenseOutput
from .base import Condenser, register_condenser
from .baselines import image_parts, random_per_class


@dataclass(frozen=True)
class RandomKDConfig:
    teachers: tuple[str, ...] = PAPER_POOL
    teacher_recipe: str = "paper"
    teacher_seed: int = 0
    soft_label_dtype: str = "float16"

    def __post_init__(self):
        check_pool_config(self, "random-kd", soft_label_dtype=Rule(choices=SOFT_DTYPES))

    @classmethod
    def preset(cls, name: str) -> "RandomKDConfig":
        return cls() if name == "paper" else cls(teachers=QUICK_POOL, teacher_recipe="quick")


@register_condenser
class RandomKD(Condenser):
    name = "random-kd"
    Config = RandomKDConfig
    soft_labels = True
    role = "baseline"
    default_run = False  # under hard-label protocols it is plain random

    def _condense(self, train, ipc, *, seed, device, progress):
        cfg = self.config
        pool = teacher_pool(train, cfg.teachers, TeacherRecipe.preset(cfg.teacher_recipe), seed=cfg.teacher_seed,
                            device=device, progress=progress)
        idx = random_per_class(train.labels, len(train.classes), ipc, seed)
        logits = ensemble_logits(pool, train.normalize(train.images[idx].to(device)))
        parts = {**image_parts(train, idx), "soft_labels": logits.cpu().to(getattr(torch, cfg.soft_label_dtype)),
                 "soft_label_policy": "static",
                 "soft_label_attrs": {"space": "logits", "rule": "mean of the teachers' logits",
                                      "teachers": list(cfg.teachers)}}
        return CondenseOutput(parts, extra={"source_indices": idx.tolist(), **pool_summary(pool)},
                              teacher=pool_costs(pool))
