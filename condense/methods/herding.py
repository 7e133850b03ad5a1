"""Herding (Welling, ICML 2009) in a ConvNet's feature space, by two named rules.

``herding`` is the rule of Welling and of iCaRL (Rebuffi et al., CVPR 2017, Alg. 4): per class,
greedily pick the example that keeps the running mean of the chosen features closest to the class
mean, ``argmin_x ‖(k+1)·μ − (Σ_{chosen} φ + φ(x))‖₂``. ``herding-deepcore`` is the rule DeepCore's
code runs (``deepcore/methods/herding.py``): the *argmax* of the same distance, which DeepCore's and
RS2's tables report as "Herding". Features come from a ConvNet that is randomly initialised
(``train_epochs=0``, the default) or briefly trained on the split.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..budget import BatchStream, plan_steps, schedule_batches
from ..checks import Rule, check_config
from ..engine import Clock, Schedule, fit
from ..models import create_model
from ._common import CondenseOutput
from .base import Condenser, per_class_indices, register_condenser
from .baselines import image_parts


@dataclass(frozen=True)
class HerdingConfig:
    arch: str = "convnet"
    width: int = 128
    train_epochs: int = 0
    lr: float = 0.01
    batch_size: int = 256

    def __post_init__(self):
        check_config(self, "herding", arch=Rule(choices=("convnet", "convnet_bn")), width=Rule(lo=1, hi=4096), train_epochs=Rule(lo=0, hi=100_000),
                     lr=Rule(lo=0, hi=10, lo_open=True), batch_size=Rule(lo=1, hi=1_000_000))

    @classmethod
    def preset(cls, name: str) -> "HerdingConfig":
        return cls()


RULES = ("icarl", "deepcore")


def herding_select(features: torch.Tensor, k: int, rule: str = "icarl") -> torch.Tensor:
    """Indices (into ``features``) of ``k`` herded examples, in selection order: the example whose
    addition puts the chosen mean nearest the class mean (``icarl``), or farthest (``deepcore``)."""
    if rule not in RULES:
        raise ValueError(f"unknown herding rule {rule!r}; expected one of {', '.join(RULES)}")
    n = features.shape[0]
    k = min(k, n)
    mu = features.mean(0)
    running = torch.zeros_like(mu)
    available = torch.ones(n, dtype=torch.bool, device=features.device)
    chosen = []
    for step in range(k):
        dist = torch.linalg.vector_norm((step + 1) * mu - (running + features), dim=1)
        if rule == "icarl":
            dist[~available] = float("inf")
            i = int(torch.argmin(dist))
        else:
            dist[~available] = -float("inf")
            i = int(torch.argmax(dist))
        chosen.append(i)
        available[i] = False
        running += features[i]
    return torch.tensor(chosen, dtype=torch.long)


@torch.no_grad()
def embed_all(model, train, device, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    feats = []
    for start in range(0, len(train), batch_size):
        x = train.normalize(train.images[start:start + batch_size].to(device))
        feats.append(model.embed(x))
    return torch.cat(feats)


def _brief_train(model, train, cfg: HerdingConfig, device, g: torch.Generator):
    """A few epochs of SGD (momentum 0.9, weight decay 5e-4, constant rate) on the engine."""
    n = len(train)
    plan = plan_steps("epochs", cfg.train_epochs, cfg.batch_size, n, None)
    stream = BatchStream(n, g)

    def loss_fn(b):
        x = train.normalize(train.images[b].to(device))
        return torch.nn.functional.cross_entropy(model(x), train.labels[b].to(device))

    schedule = Schedule(optimizer="sgd", lr=cfg.lr, momentum=0.9, weight_decay=5e-4, kind="constant",
                        epochs=cfg.train_epochs, passes=cfg.train_epochs, steps_per_pass=plan.steps_per_pass)
    fit(model, schedule_batches(plan, lambda e: stream), loss_fn, schedule, clock=Clock(device),
        desc="herding features", where="herding's feature network")


@register_condenser
class Herding(Condenser):
    name = "herding"
    Config = HerdingConfig
    rule = "icarl"

    def _condense(self, train, ipc, *, seed, device, progress):
        cfg = self.config
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = create_model(cfg.arch, train.shape, len(train.classes), width=cfg.width).to(device)
        if cfg.train_epochs:
            _brief_train(model, train, cfg, device, g)
        feats = embed_all(model, train, device)
        chosen = []
        for idx in per_class_indices(train.labels, len(train.classes)):
            chosen.append(idx[herding_select(feats[idx.to(device)], ipc, self.rule).cpu()])
        idx = torch.cat(chosen)
        return CondenseOutput(image_parts(train, idx), extra={"source_indices": idx.tolist()})


@register_condenser
class HerdingDeepCore(Herding):
    """DeepCore's herding (the argmax rule), for comparison with DeepCore's and RS2's tables."""

    name = "herding-deepcore"
    rule = "deepcore"
    default_run = False
