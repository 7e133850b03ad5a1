"""Baselines: ``random`` real images per class, and ``full`` (the whole training split)."""
from __future__ import annotations

import torch

from ._common import CondenseOutput
from .base import Condenser, generator, per_class_indices, register_condenser
from .graph_common import graph_parts


def random_per_class(labels: torch.Tensor, num_classes: int, ipc: int, seed: int) -> torch.Tensor:
    """``ipc`` indices per class, drawn without replacement with ``seed`` (all of a smaller class)."""
    g = generator(seed)
    chosen = []
    for idx in per_class_indices(labels, num_classes):
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:ipc]])
    return torch.cat(chosen)


def image_parts(train, idx: torch.Tensor) -> dict:
    return {"kind": "images", "images": train.images[idx].clone(), "image_encoding": "uint8",
            "labels": train.labels[idx].clone()}


@register_condenser
class RandomReal(Condenser):
    """IPC real images per class, drawn uniformly without replacement (seeded)."""

    name = "random"
    kinds = ("images", "graphs")
    role = "baseline"

    def _condense(self, train, ipc, *, seed, device, progress):
        idx = random_per_class(train.labels, len(train.classes), ipc, seed)
        if train.kind == "graphs":
            return graph_parts(train, idx)
        return CondenseOutput(image_parts(train, idx), extra={"source_indices": idx.tolist()})


@register_condenser
class FullData(Condenser):
    """The whole training split: the reference every condensed set is compared with."""

    name = "full"
    kinds = ("images", "graphs")
    role = "reference"
    touches_full_data = True
    uses_ipc = False
    deterministic = True

    def _condense(self, train, ipc, *, seed, device, progress):
        idx = torch.arange(len(train))
        if train.kind == "graphs":
            return graph_parts(train, idx)
        return CondenseOutput(image_parts(train, idx))
