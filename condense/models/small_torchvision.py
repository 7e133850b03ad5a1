"""torchvision classifiers with the usual small-image stem (3×3 stride-1 first conv, no max-pool).

torchvision is imported when the first of them is built: importing it loads ``torch._dynamo`` (through
``torchvision.ops``), seconds on a small CPU that a run of the suite's own models never needs.
"""
from __future__ import annotations

import torch.nn as nn

from ._registry import register_model


def _tvm():
    import torchvision.models as tvm

    return tvm


def _small_stem_resnet(build, in_shape, num_classes, **kw):
    m = build(weights=None, num_classes=num_classes, **kw)
    m.conv1 = nn.Conv2d(in_shape[0], 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


@register_model("resnet18")
def resnet18(in_shape, num_classes, **kw):
    return _small_stem_resnet(_tvm().resnet18, in_shape, num_classes, **kw)


@register_model("mobilenetv2")
def mobilenetv2(in_shape, num_classes, **kw):
    m = _tvm().mobilenet_v2(weights=None, num_classes=num_classes, **kw)
    first = m.features[0][0]
    m.features[0][0] = nn.Conv2d(in_shape[0], first.out_channels, 3, 1, 1, bias=False)
    return m


def _small_stem_shufflenet(build, in_shape, num_classes, **kw):
    m = build(weights=None, num_classes=num_classes, **kw)
    first = m.conv1[0]
    m.conv1[0] = nn.Conv2d(in_shape[0], first.out_channels, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


@register_model("shufflenetv2")
def shufflenetv2(in_shape, num_classes, **kw):
    return _small_stem_shufflenet(_tvm().shufflenet_v2_x1_0, in_shape, num_classes, **kw)


@register_model("resnet50")
def resnet50(in_shape, num_classes, **kw):
    """ResNet-50 in CIFAR form (3×3 stride-1 stem, no max-pool): a CV-DD paper-pool teacher."""
    return _small_stem_resnet(_tvm().resnet50, in_shape, num_classes, **kw)


@register_model("densenet121")
def densenet121(in_shape, num_classes, **kw):
    """DenseNet-121 (growth 32, blocks 6-12-24-16) in CIFAR form: a 3×3 stride-1 first convolution of
    2 × growth channels straight into the first block (no normalisation or pooling after it, as the
    common CIFAR form has it); a CV-DD paper-pool teacher."""
    m = _tvm().densenet121(weights=None, num_classes=num_classes, **kw)
    first = m.features.conv0
    m.features.conv0 = nn.Conv2d(in_shape[0], first.out_channels, 3, 1, 1, bias=False)
    m.features.norm0, m.features.relu0, m.features.pool0 = nn.Identity(), nn.Identity(), nn.Identity()
    return m


@register_model("shufflenetv2_x0_5")
def shufflenetv2_x0_5(in_shape, num_classes, **kw):
    """ShuffleNetV2 at width 0.5 (stages of 48, 96 and 192 channels) in CIFAR form: CV-DD's ShuffleNetV2."""
    return _small_stem_shufflenet(_tvm().shufflenet_v2_x0_5, in_shape, num_classes, **kw)
