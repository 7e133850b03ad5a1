"""DM: Dataset Condensation with Distribution Matching (Zhao & Bilen, WACV 2023; the official
``main_DM.py`` of VICO-UoE/DatasetCondensation).

The synthetic images of each class are learned so that, in the embedding space of randomly initialised
networks, their mean matches the mean of real images of the class (§3, Eq. 4):

    min_S  E_{ψ ~ P_ψ, ω ~ Ω} Σ_c ‖ mean_i ψ(A(x^c_i, ω)) − mean_j ψ(A(s^c_j, ω)) ‖²

- **Embeddings**: every iteration builds a freshly initialised ConvNet-3 (instance norm, the model the
  official script distils with), freezes it and takes the output of its feature extractor (``embed``,
  before the classifier); the real embeddings carry no gradient.
- **Per class**: a batch of 256 real images of the class (drawn without replacement) against the class's
  IPC synthetic images; the squared distance of the two means, summed over classes and features.
- **Augmentation** ``A``: DSA in Siamese mode (:meth:`condense.augment.DSA.siamese`): one family per
  class and iteration, one draw shared by the real and the synthetic batch (the official seed trick).
- **Optimiser**: SGD on the pixels, lr 1.0, momentum 0.5, 20,000 iterations, the images initialised
  from random real images of their class (``init="real"``) or Gaussian noise (``"noise"``).
- **Labels** are hard (one class per image); the images are stored as the model sees them (standardized
  floats, ``model-input``: DM never clips them to the pixel range).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import trange

from ..augment import DSA
from ..checks import Rule, check_config
from ..models import create_model
from ._common import CondenseOutput
from .base import Condenser, generator, per_class_indices, register_condenser

INITS = ("real", "noise")


@dataclass(frozen=True)
class DMConfig:
    iterations: int = 20_000
    lr: float = 1.0                  # the official --lr_img for DM
    momentum: float = 0.5
    batch_real: int = 256
    init: str = "real"
    dsa: bool = True
    arch: str = "convnet"            # the embedding network drawn anew every iteration
    width: int = 128                 # its width (DM's ConvNet: 128)

    def __post_init__(self):
        check_config(self, "dm", iterations=Rule(lo=1, hi=10_000_000), lr=Rule(lo=0, lo_open=True),
                     momentum=Rule(lo=0, hi=1, hi_open=True), batch_real=Rule(lo=1, hi=1_000_000),
                     init=Rule(choices=INITS), width=Rule(lo=1, hi=4096))

    @classmethod
    def preset(cls, name: str) -> "DMConfig":
        """``paper``: the official counts; ``quick``: 1,000 iterations with embedding ConvNets of width 32
        (a 28×28 or 32×32 iteration at width 128 embeds 2,560 real images: seconds on a CPU core)."""
        return cls() if name == "paper" else cls(iterations=1000, width=32)


def dm_loss(embed, real: list[torch.Tensor], syn: list[torch.Tensor], aug: DSA | None) -> torch.Tensor:
    """Eq. 4 for one network: Σ_c ‖mean ψ(A(real_c)) − mean ψ(A(syn_c))‖², the class's real and
    synthetic batches augmented alike (Siamese DSA), real embeddings without gradient."""
    total = syn[0].new_zeros(())
    for xr, xs in zip(real, syn):
        if aug is not None:
            xr, xs = aug.siamese(xr, xs)
        with torch.no_grad():
            mr = embed(xr).mean(0)
        total = total + ((mr - embed(xs).mean(0)) ** 2).sum()
    return total


@register_condenser
class DM(Condenser):
    """Distribution Matching: synthetic images whose mean embedding matches the real one's per class
    under randomly initialised networks (module docstring)."""

    name = "dm"
    Config = DMConfig
    default_run = False  # 1,000 quick iterations (a fresh network and 256 real images per class each) outlast the main job
    deviations = ("the real batch of each class is drawn from a seeded generator (the official code uses "
                  "numpy's global RNG and seeds DSA from the clock)",)

    def _condense(self, train, ipc, *, seed, device, progress):
        cfg = self.config
        c = len(train.classes)
        g = generator(seed)
        pools = per_class_indices(train.labels, c)
        if any(len(p) == 0 for p in pools):
            raise ValueError(f"dm: every class needs real images; {sum(len(p) == 0 for p in pools)} have none")
        x_all = train.normalize(train.images.to(device))
        if cfg.init == "real":
            idx = torch.cat([p[torch.randperm(len(p), generator=g)[:ipc]] for p in pools])
            if any(len(p) < ipc for p in pools):
                raise ValueError(f"dm: init='real' needs {ipc} real images per class; the smallest class has "
                                 f"{min(len(p) for p in pools)}")
            syn = x_all[idx.to(device)].clone()
        else:
            syn = torch.randn((c * ipc, *train.shape), generator=g).to(device)
        y = torch.arange(c).repeat_interleave(ipc)
        syn.requires_grad_(True)
        opt = torch.optim.SGD([syn], lr=cfg.lr, momentum=cfg.momentum)
        aug = DSA.for_dataset(train.name) if cfg.dsa else None
        torch.manual_seed(seed)
        for _ in trange(cfg.iterations, disable=not progress, desc="dm", leave=False):
            net = create_model(cfg.arch, train.shape, c, width=cfg.width).to(device)
            net.train()
            for p in net.parameters():
                p.requires_grad_(False)
            real = [x_all[p[torch.randperm(len(p), generator=g)[:cfg.batch_real]].to(device)] for p in pools]
            loss = dm_loss(net.embed, real, list(syn.split(ipc)), aug)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        images = syn.detach().float().cpu()
        parts = {"kind": "images", "images": images, "image_encoding": "model-input", "labels": y}
        extra = {"final_loss": float(loss.detach()), "init": cfg.init,
                 "dsa": aug.strategy + " (Siamese)" if aug is not None else "none"}
        if cfg.init == "real":
            extra["source_indices"] = idx.tolist()
        paper = DMConfig()
        scaled = [f"{k} {getattr(cfg, k)} (the paper's {getattr(paper, k)})" for k in ("iterations", "width")
                  if getattr(cfg, k) != getattr(paper, k)]
        return CondenseOutput(parts, extra=extra, deviations=("scaled for the machine: " + ", ".join(scaled),) if scaled else ())
