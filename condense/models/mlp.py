"""A plain multilayer perceptron on flattened inputs (DC's ``MLP``: two hidden layers of 128)."""
from __future__ import annotations

import math

import torch.nn as nn

from ._registry import register_model


@register_model("mlp")
def mlp(in_shape, num_classes, width: int = 128, depth: int = 2):
    dim = math.prod(in_shape) if not isinstance(in_shape, int) else in_shape
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(depth):
        layers += [nn.Linear(dim, width), nn.ReLU(inplace=True)]
        dim = width
    layers.append(nn.Linear(dim, num_classes))
    return nn.Sequential(*layers)
