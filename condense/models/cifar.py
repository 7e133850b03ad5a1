"""The CIFAR-style teachers of INFER's pool, built as the official CIFAR models are.

- ``mobilenetv2_cifar``: MobileNetV2 (Sandler et al., CVPR 2018) with the CIFAR changes: a stride-1
  3×3 stem and stride 1 in the 24-channel stage, so a 32×32 input leaves the last stage at 4×4
  (torchvision's, even with a stride-1 stem, ends at 2×2); inverted residual blocks of
  (expansion, channels, blocks, stride) = (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
  (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1); a 1×1 conv to 1280; average pooling; linear. A
  stride-1 block whose width changes adds a 1×1 conv + BN shortcut; stride-2 blocks have none.
- ``shufflenet_g2``: ShuffleNet v1 (Zhang et al., CVPR 2018) with 2 groups, as the CIFAR code builds
  it: a 1×1 stem to 24 channels (no pooling), three stages of (200, 400, 800) channels with (4, 8, 4)
  units; each unit is a grouped 1×1 conv to a quarter of its width (ungrouped from the 24-channel
  stem), a channel shuffle, a depthwise 3×3 and a grouped 1×1 conv; a stage's first unit has stride
  2 and concatenates a 3×3 average-pooled shortcut, the others add the identity. 32×32 ends at 4×4.

Both are BatchNorm networks whose statistics INFER matches; ``features`` gives the last feature map.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._registry import register_model


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))


class InvertedResidual(nn.Module):
    """Expand (1×1), depthwise 3×3 (stride s), project (1×1, linear); residual when stride is 1."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        super().__init__()
        mid = expansion * cin
        self.stride = stride
        self.expand, self.depthwise = _conv_bn(cin, mid, 1), _conv_bn(mid, mid, 3, stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1)
        self.shortcut = _conv_bn(cin, cout, 1) if stride == 1 and cin != cout else nn.Identity()

    def forward(self, x):
        out = self.project(F.relu(self.depthwise(F.relu(self.expand(x)))))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2Cifar(nn.Module):
    STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
              (6, 320, 1, 1))

    def __init__(self, in_shape, num_classes: int):
        super().__init__()
        self.stem = _conv_bn(in_shape[0], 32, 3)
        blocks, cin = [], 32
        for expansion, cout, n, stride in self.STAGES:
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, expansion, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(320, 1280, 1)
        self.classifier = nn.Linear(1280, num_classes)

    def features(self, x):
        return F.relu(self.head(self.blocks(F.relu(self.stem(x)))))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, g·c, H, W) → interleave the groups' channels (ShuffleNet §3.1)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        self.stride = stride
        branch = cout - cin if stride == 2 else cout   # the first unit's shortcut is concatenated
        mid = branch // 4
        self.g1 = 1 if cin == 24 else groups           # the stem's 24 channels are not grouped
        self.reduce = _conv_bn(cin, mid, 1, groups=self.g1)
        self.depthwise = _conv_bn(mid, mid, 3, stride, groups=mid)
        self.expand = _conv_bn(mid, branch, 1, groups=groups)

    def forward(self, x):
        out = channel_shuffle(F.relu(self.reduce(x)), self.g1)
        out = self.expand(F.relu(self.depthwise(out)))
        if self.stride == 2:
            return F.relu(torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1))
        return F.relu(out + x)


class ShuffleNetCifar(nn.Module):
    def __init__(self, in_shape, num_classes: int, widths=(200, 400, 800), units=(4, 8, 4), groups: int = 2):
        super().__init__()
        self.stem = _conv_bn(in_shape[0], 24, 1)
        stages, cin = [], 24
        for width, n in zip(widths, units):
            for i in range(n):
                stages.append(ShuffleUnit(cin, width, 2 if i == 0 else 1, groups))
                cin = width
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def features(self, x):
        return self.stages(F.relu(self.stem(x)))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


@register_model("mobilenetv2_cifar")
def mobilenetv2_cifar(in_shape, num_classes, **kw):
    return MobileNetV2Cifar(in_shape, num_classes, **kw)


@register_model("shufflenet_g2")
def shufflenet_g2(in_shape, num_classes, **kw):
    return ShuffleNetCifar(in_shape, num_classes, **kw)
