"""DC's cross-architecture evaluation family (Zhao et al., ICLR 2021, Table 2; ``networks.py`` of
VICO-UoE/DatasetCondensation), for 28×28 grey and 32×32 colour inputs: ``lenet``, ``alexnet``,
``vgg11`` (instance norm), ``resnet18_ap`` (DC's ResNet18BN_AP: average-pooling downsampling, BatchNorm)
and ``mlp`` (:mod:`.mlp`). Grey 28×28 inputs are padded in the first convolution to the 32×32 geometry,
as DC does; each model's parameter count equals the official definition's (``tests/test_models.py``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._registry import register_model


def _shape(in_shape) -> tuple[int, int, int]:
    c, h, w = in_shape
    if (h, w) not in ((28, 28), (32, 32)):
        raise ValueError(f"DC's evaluation family takes 28×28 or 32×32 images, got {h}×{w}")
    return c, h, w


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


class LeNet(nn.Module):
    """Two 5×5 convolutions (6 and 16 maps) with max-pooling, then 120 → 84 → classes."""

    def __init__(self, in_shape, num_classes: int):
        super().__init__()
        c, _, _ = _shape(in_shape)
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2 if c == 1 else 0), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True), nn.Linear(120, 84),
                                  nn.ReLU(inplace=True), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.head(_flat(self.features(x)))


class AlexNet(nn.Module):
    """DC's small AlexNet: 5×5 convolutions of 128 and 192 maps, three 3×3 (256, 192, 192), three
    max-pools, one linear layer on the 4×4 map."""

    def __init__(self, in_shape, num_classes: int):
        super().__init__()
        c, _, _ = _shape(in_shape)
        layers, prev = [], c
        for i, (width, k) in enumerate(((128, 5), (192, 5), (256, 3), (192, 3), (192, 3))):
            pad = (4 if c == 1 else 2) if i == 0 else k // 2
            layers += [nn.Conv2d(prev, width, k, padding=pad), nn.ReLU(inplace=True)]
            if i in (0, 1, 4):
                layers.append(nn.MaxPool2d(2))
            prev = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(192 * 4 * 4, num_classes)

    def forward(self, x):
        return self.fc(_flat(self.features(x)))


VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """VGG-11 with a normalization after every 3×3 convolution (DC: instance norm as ``GroupNorm(c, c)``)
    and one linear layer on the 512 features of the 1×1 map."""

    def __init__(self, in_shape, num_classes: int, norm: str = "instancenorm"):
        super().__init__()
        c, _, _ = _shape(in_shape)
        layers, prev = [], c
        for i, v in enumerate(VGG11):
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers += [nn.Conv2d(prev, v, 3, padding=3 if c == 1 and i == 0 else 1),
                       nn.GroupNorm(v, v) if norm == "instancenorm" else nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            prev = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.classifier(_flat(self.features(x)))


class BlockAP(nn.Module):
    """ResNet basic block whose stride-2 downsampling is a 2×2 average pool after the first
    convolution (and after the 1×1 projection of the shortcut), DC's ``BasicBlock_AP``."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        if self.stride != 1:
            out = F.avg_pool2d(out, 2)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18AP(nn.Module):
    """ResNet-18 (2, 2, 2, 2 basic blocks of 64 to 512 maps) with average-pool downsampling and
    BatchNorm; the linear layer reads the whole final map (3×3 for 28×28 inputs, 4×4 for 32×32)."""

    def __init__(self, in_shape, num_classes: int):
        super().__init__()
        c, _, _ = _shape(in_shape)
        self.stem = nn.Sequential(nn.Conv2d(c, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        blocks, prev = [], 64
        for width, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
            blocks.append(BlockAP(prev, width, stride))
            prev = width
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(512 * (3 * 3 if c == 1 else 4 * 4), num_classes)

    def forward(self, x):
        return self.classifier(_flat(self.blocks(self.stem(x))))


@register_model("lenet")
def lenet(in_shape, num_classes):
    return LeNet(in_shape, num_classes)


@register_model("alexnet")
def alexnet(in_shape, num_classes):
    return AlexNet(in_shape, num_classes)


@register_model("vgg11")
def vgg11(in_shape, num_classes):
    return VGG(in_shape, num_classes)


@register_model("resnet18_ap")
def resnet18_ap(in_shape, num_classes):
    return ResNet18AP(in_shape, num_classes)
