"""Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021), built on kornia.

DSA's evaluation mode ``S`` draws *one* family per batch (color, crop, cutout, flip, scale or rotate)
and gives each image its own random parameters. The families follow DSA's ``ParamDiffAug``:
brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5] (applied in that order as ``color``);
translation by up to 12.5 % (``crop``); a zero-filled square of half the side (``cutout``);
horizontal flip with p=0.5; independent x/y scaling in [1/1.2, 1.2]; rotation within ±15°.
Images are standardized, so zero fill is the mean pixel, as in DSA. Everything stays on the input's
device and is differentiable with respect to the images.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import kornia.augmentation as K

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
DIGIT_DATASETS = ("digits", "mnist", "fashion-mnist", "svhn")


class DSAColor(nn.Module):
    """DSA's brightness, saturation and contrast on standardized images, per-image parameters."""

    def __init__(self, brightness: float = 1.0, saturation: float = 2.0, contrast: float = 0.5):
        super().__init__()
        self.brightness, self.saturation, self.contrast = brightness, saturation, contrast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        r = lambda: torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)  # noqa: E731
        x = x + (r() - 0.5) * self.brightness
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (r() * self.saturation) + m
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - m) * (r() + self.contrast) + m


def family(name: str) -> nn.Module:
    """One DSA family as a kornia augmentation (or DSA's own color op), applied with p=1."""
    if name == "color":
        return DSAColor()
    if name == "crop":
        return K.RandomAffine(degrees=0.0, translate=(0.125, 0.125), padding_mode="zeros", p=1.0)
    if name == "cutout":
        return K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.0, p=1.0)
    if name == "flip":
        return K.RandomHorizontalFlip(p=0.5)
    if name == "scale":
        return K.RandomAffine(degrees=0.0, scale=(1 / 1.2, 1.2, 1 / 1.2, 1.2), padding_mode="zeros", p=1.0)
    if name == "rotate":
        return K.RandomAffine(degrees=15.0, padding_mode="zeros", p=1.0)
    raise ValueError(f"unknown DSA family {name!r}; expected one of {', '.join(FAMILIES)}")


class DSA(nn.Module):
    """DSA in mode ``S``: one randomly chosen family per call, per-image parameters.

    >>> aug = DSA.for_dataset("cifar10")             # color, crop, cutout, flip, scale, rotate
    >>> aug = DSA.for_dataset("mnist")               # the same without flip
    """

    def __init__(self, families=FAMILIES):
        super().__init__()
        self.names = tuple(families)
        self.ops = nn.ModuleList(family(n) for n in self.names)

    @classmethod
    def for_dataset(cls, name: str) -> "DSA":
        return cls(tuple(f for f in FAMILIES if not (f == "flip" and name in DIGIT_DATASETS)))

    @property
    def strategy(self) -> str:
        return "_".join(self.names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = int(torch.randint(len(self.ops), (1,)))
        return self.ops[i](x)


class CropFlip(nn.Module):
    """Random crop with zero padding, then a horizontal flip: the KD and teacher recipes.

    ``pad=None`` pads by an eighth of the side: the usual 4 pixels on 32×32, 1 on 8×8 digits.
    """

    def __init__(self, pad: int | None = None, flip: bool = True):
        super().__init__()
        self.pad = pad
        self.flip = K.RandomHorizontalFlip(p=0.5) if flip else nn.Identity()
        self._crops: dict[tuple[int, int], nn.Module] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if size not in self._crops:
            pad = self.pad if self.pad is not None else max(1, round(min(size) / 8))
            self._crops[size] = K.RandomCrop(size, padding=pad, p=1.0)
        return self.flip(self._crops[size](x))
