"""The DC-style ConvNet (Zhao et al., ICLR 2021, "Dataset Condensation with Gradient Matching").

Each block is conv3×3 → norm → ReLU → 2×2 pooling; a linear classifier follows. ``instancenorm`` is
``GroupNorm(C, C, affine=True)`` as in the DC code. As in DC, the first convolution pads a one-channel
28×28 input (MNIST, Fashion-MNIST) by 3, so it becomes 32×32; DC applies this to every one-channel
set, which only ever meant 28×28 ones there, so smaller inputs such as 8×8 digits keep padding 1.
The default depth is 3, reduced when the input is too small to halve three times.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ._registry import register_model

NORMS = ("instancenorm", "batchnorm", "layernorm", "none")


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "instancenorm":
        return nn.GroupNorm(c, c, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(c)
    if kind == "layernorm":
        return nn.GroupNorm(1, c, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected one of {', '.join(NORMS)}")


def first_padding(in_shape) -> int:
    c, h, w = in_shape
    return 3 if (c == 1 and h == w == 28) else 1


def default_depth(in_shape, max_depth: int = 3) -> int:
    c, h, w = in_shape
    side = min(h, w) + 2 * first_padding(in_shape) - 2
    depth = 0
    while depth < max_depth and side // 2 >= 1:
        side //= 2
        depth += 1
    return max(depth, 1)


class ConvNet(nn.Module):
    def __init__(self, in_shape, num_classes: int, width: int = 128, depth: int | None = None,
                 norm: str = "instancenorm", pooling: str = "avgpool"):
        super().__init__()
        c, h, w = in_shape
        depth = depth or default_depth(in_shape)
        layers: list[nn.Module] = []
        for d in range(depth):
            pad = first_padding(in_shape) if d == 0 else 1
            layers += [nn.Conv2d(c if d == 0 else width, width, 3, padding=pad), _norm(norm, width),
                       nn.ReLU(inplace=True)]
            if d == 0:
                h, w = h + 2 * pad - 2, w + 2 * pad - 2
            if pooling == "avgpool":
                layers.append(nn.AvgPool2d(2, 2))
            elif pooling == "maxpool":
                layers.append(nn.MaxPool2d(2, 2))
            elif pooling != "none":
                raise ValueError(f"unknown pooling {pooling!r}")
            if pooling != "none":
                h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"input {tuple(in_shape)} is too small for depth {depth}")
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * h * w
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


@register_model("convnet")
def convnet(in_shape, num_classes, **kw):
    return ConvNet(in_shape, num_classes, **kw)


@register_model("convnet_bn")
def convnet_bn(in_shape, num_classes, **kw):
    """ConvNet with BatchNorm: the teacher variant whose BN statistics INFER and CV-DD match."""
    return ConvNet(in_shape, num_classes, **{"norm": "batchnorm", **kw})
