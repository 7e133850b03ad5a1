"""What condensers share: the typed output of ``_condense``, the BatchNorm-statistics loss, one
pixel-optimisation loop, replay relabelling, and the ``for_protocol`` rule of replay-label methods.

A new replay-label condenser is one module: subclass :class:`ReplayLabels` and :class:`Condenser`,
give its config ``soft_labels`` (``"replay"``/``"static"``), ``replay_epochs`` and ``replay_batch``,
and return a :class:`CondenseOutput` (``docs/adding-a-method.md``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn
from tqdm.auto import trange

from .. import replay
from ..engine import lr_multiplier
from ..teachers import TeacherCost

__all__ = ["BNStatLoss", "CondenseOutput", "ReplayLabels", "TeacherCost", "jpeg_roundtrip", "optimize_pixels",
           "replay_labels"]


@dataclass
class CondenseOutput:
    """What ``Condenser._condense`` returns.

    Args:
        parts: the set's parts, keyword arguments of :class:`condense.format.SyntheticSet` (``kind``,
            ``images``, ``labels``, ``soft_labels``, ``graphs``, ...).
        extra: method facts recorded in the set's ``extra`` metadata (source indices, committees, ...).
        deviations: deviations from the paper that hold for this run only (the class lists the fixed ones).
        teacher: the teacher pool's cost (``condense.teachers.pool_costs``); zero for teacher-free methods.
    """

    parts: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    deviations: tuple[str, ...] = ()
    teacher: TeacherCost = field(default_factory=TeacherCost)


class BNStatLoss:
    """Per-group BatchNorm statistic matching (INFER §3.3, CV-DD Eq. 6, SRe2L's recovery loss): for each
    group g of ``group_size`` images, ``Σ_l s_l (‖μ_l,g − μ̂_l‖₂ + ‖σ²_l,g − σ̂²_l‖₂)`` over the BN layers
    that actually run, with biased variance over (N, H, W) of the layer's input, the first layer
    weighted ``first_multiplier``."""

    def __init__(self, model: nn.Module, group_size: int, first_multiplier: float):
        self.group_size, self.first = group_size, first_multiplier
        self.terms: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()
                        if isinstance(m, nn.BatchNorm2d)]

    def _hook(self, module, inputs, output):
        x = inputs[0]
        g = x.shape[0] // self.group_size
        x = x.reshape(g, self.group_size, *x.shape[1:]).transpose(1, 2).flatten(2)  # g × ch × (n·h·w)
        mean, var = x.mean(-1), x.var(-1, unbiased=False)
        self.terms.append(torch.linalg.vector_norm(var - module.running_var, dim=1)
                          + torch.linalg.vector_norm(mean - module.running_mean, dim=1))

    def pop(self) -> torch.Tensor:
        """The weighted sum per group for the last forward pass (first BN layer × multiplier)."""
        weights = [self.first] + [1.0] * (len(self.terms) - 1)
        total = sum(w * t for w, t in zip(weights, self.terms))
        self.terms = []
        return total

    def close(self):
        for h in self.handles:
            h.remove()


def optimize_pixels(param: torch.Tensor, loss: Callable[[int], torch.Tensor], *, iterations: int, lr: float,
                    betas: tuple[float, float] = (0.5, 0.9), after_step: Callable[[], None] | None = None,
                    progress: bool = False, desc: str = "pixels") -> torch.Tensor:
    """Adam on a pixel tensor (images or compensators) with cosine decay and no warm-up, the learning
    rate set before every iteration from :func:`condense.engine.lr_multiplier` (``cosine-step``), as
    INFER and CV-DD (and SRe2L before them) do. ``loss(it)`` returns iteration ``it``'s scalar loss;
    ``after_step`` runs without gradients after each step (CV-DD clamps the pixels there)."""
    opt = torch.optim.Adam([param], lr=lr, betas=betas, eps=1e-8)
    for it in trange(iterations, desc=desc, disable=not progress, leave=False, unit="it"):
        for group in opt.param_groups:
            group["lr"] = lr * lr_multiplier("cosine-step", 0, it, iterations, 1)
        value = loss(it)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if after_step is not None:
            with torch.no_grad():
                after_step()
    return param


def replay_labels(label: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, epochs: int, batch: int,
                  g: torch.Generator, progress: bool = False, desc: str = "replay labels") -> tuple[dict, torch.Tensor]:
    """FKD-style replay labels: per epoch a seeded visiting order, a RandomResizedCrop (0.08–1) and flip
    per view and CutMix (β(1, 1)) per batch (:func:`condense.replay.draw`), and ``label`` (views → logits)
    of exactly the views a student will train on. Returns (the replay record, E×N×C logits)."""
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    rec = replay.draw(epochs, n, h, w, batch, g)
    logits = [label(replay.views(x, rec, e, torch.arange(n), batch))
              for e in trange(epochs, desc=desc, disable=not progress, leave=False, unit="epoch")]
    return rec, torch.stack(logits)


class ReplayLabels:
    """The ``for_protocol`` rule of a replay-label condenser (a mixin placed before ``Condenser``).

    Under ``fkd``, replay labels for exactly the protocol's epochs and batch; under ``kd`` (one label per
    image), static labels; hard-label protocols take the set as configured, so that its hard-label row
    (HLR) is the same set, with the same configuration, as its ``fkd`` row. The config needs the fields
    ``soft_labels`` (``"replay"`` or ``"static"``), ``replay_epochs`` and ``replay_batch``."""

    soft_labels = True

    def for_protocol(self, protocol):
        cfg = self.config
        if getattr(protocol, "augment", None) == "fkd":
            if cfg.soft_labels != "replay":
                return self
            return type(self)(cfg, replay_epochs=protocol.passes, replay_batch=protocol.batch_size or cfg.replay_batch)
        if getattr(protocol, "loss", "ce") == "kd" and cfg.soft_labels != "static":
            return type(self)(cfg, soft_labels="static")
        return self



def jpeg_roundtrip(images: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """uint8 images (N, C, H, W) encoded as JPEG by PIL at ``quality`` (its default 75, 4:2:0 chroma
    subsampling for colour) and decoded back, as the official CV-DD ``recover.py`` saves its synthetic
    images and its relabelling and students read them."""
    import io

    import numpy as np
    from PIL import Image

    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"jpeg_roundtrip takes uint8 images of shape (N, 1|3, H, W), got {images.dtype} "
                         f"{tuple(images.shape)}")
    out = np.empty(tuple(images.shape), dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).numpy()
    for i, a in enumerate(arr):
        buf = io.BytesIO()
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        dec = np.asarray(Image.open(buf).convert("L" if a.shape[-1] == 1 else "RGB"))
        out[i] = dec[None] if dec.ndim == 2 else dec.transpose(2, 0, 1)
    return torch.from_numpy(out)
