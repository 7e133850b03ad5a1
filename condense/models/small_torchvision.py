"""torchvision classifiers with the usual small-image stem (3×3 stride-1 first conv, no max-pool)."""
from __future__ import annotations

import torch.nn as nn
import torchvision.models as tvm

from ._registry import register_model


@register_model("resnet18")
def resnet18(in_shape, num_classes, **kw):
    m = tvm.resnet18(weights=None, num_classes=num_classes, **kw)
    m.conv1 = nn.Conv2d(in_shape[0], 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


@register_model("mobilenetv2")
def mobilenetv2(in_shape, num_classes, **kw):
    m = tvm.mobilenet_v2(weights=None, num_classes=num_classes, **kw)
    first = m.features[0][0]
    m.features[0][0] = nn.Conv2d(in_shape[0], first.out_channels, 3, 1, 1, bias=False)
    return m


@register_model("shufflenetv2")
def shufflenetv2(in_shape, num_classes, **kw):
    m = tvm.shufflenet_v2_x1_0(weights=None, num_classes=num_classes, **kw)
    first = m.conv1[0]
    m.conv1[0] = nn.Conv2d(in_shape[0], first.out_channels, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m
