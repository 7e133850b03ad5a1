"""Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021), exactly as its code evaluates.

DSA's evaluation mode ``S`` draws *one* family per batch (color, crop, cutout, flip, scale or rotate)
and gives each image its own random parameters (``DatasetCondensation/utils.py``, ``ParamDiffAug``
and ``DiffAugment`` with ``Siamese`` off):

- ``color``: brightness ``+ (u − 0.5)·1.0``, saturation ``×2u`` around the channel mean, contrast
  ``× (u + 0.5)`` around the image mean, in that order (u ~ U[0, 1) per image, each);
- ``crop``: a whole-pixel translation by ``t ∈ {−s, …, s}`` in each axis, ``s = int(0.125·side + 0.5)``
  (4 on 32×32), with zero fill;
- ``cutout``: a zero square of side ``int(0.5·side + 0.5)`` centred anywhere in
  ``[0, side + 1 − side_cut mod 2)``, clipped at the border (so it may cross it);
- ``flip``: horizontal, with probability 0.5 per image;
- ``scale``: independent x and y factors in ``[1/1.2, 1.2)``, ``affine_grid`` / ``grid_sample`` with
  ``align_corners=True`` and zero padding;
- ``rotate``: an angle in ``(−15°, 15°)``, the same sampling.

Flip follows DC's rule per dataset: every dataset flips except MNIST and SVHN (and digits, whose glyphs
a mirror changes as it does MNIST's). Images are standardized, so zero fill is the mean pixel, as in
DSA. kornia gives exactly DSA's flip; the other families are short tensor ops, since kornia's crop
is a sub-pixel translation and its erasing stays inside the image. Each family exposes ``sample``
(its per-image parameters) and ``apply`` (deterministic given them). Everything stays on the input's
device and is differentiable with respect to the images.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import kornia.augmentation as K

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
NO_FLIP_DATASETS = ("digits", "mnist", "svhn")      # DSA drops flip on MNIST and SVHN
DIGIT_DATASETS = ("digits", "mnist", "fashion-mnist", "svhn")  # crop + flip recipes: no flip here


class _Family(nn.Module):
    """One DSA family: ``forward(x) = apply(x, sample(x))``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.sample(x))


class DSAColor(_Family):
    """Brightness, saturation and contrast (DSA's ``color``), per-image factors."""

    def __init__(self, brightness: float = 1.0, saturation: float = 2.0, contrast: float = 0.5):
        super().__init__()
        self.brightness, self.saturation, self.contrast = brightness, saturation, contrast

    def sample(self, x):
        return torch.rand(3, x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)

    def apply(self, x, u):
        x = x + (u[0] - 0.5) * self.brightness
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (u[1] * self.saturation) + m
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - m) * (u[2] + self.contrast) + m


class _Sided(_Family):
    """A family whose size is a ratio of the image side, rounded as DSA rounds it."""

    def __init__(self, ratio: float):
        super().__init__()
        self.ratio = ratio

    def sides(self, x) -> tuple[int, int]:
        return int(x.shape[2] * self.ratio + 0.5), int(x.shape[3] * self.ratio + 0.5)


class DSACrop(_Sided):
    """Whole-pixel translation with zero fill (DSA's ``crop``)."""

    def __init__(self, ratio: float = 0.125):
        super().__init__(ratio)

    def shifts(self, x) -> tuple[int, int]:
        return self.sides(x)

    def sample(self, x):
        sh, sw = self.shifts(x)
        n = x.shape[0]
        return (torch.randint(-sh, sh + 1, (n,), device=x.device), torch.randint(-sw, sw + 1, (n,), device=x.device))

    def apply(self, x, t):
        """Output pixel (i, j) of image b is input pixel (i + t_h[b], j + t_w[b]), zero outside."""
        n, _, h, w = x.shape
        rows = torch.arange(h, device=x.device)[None, :] + t[0][:, None]          # n × h
        cols = torch.arange(w, device=x.device)[None, :] + t[1][:, None]          # n × w
        pad = F.pad(x, (1, 1, 1, 1))
        r = (rows + 1).clamp(0, h + 1)
        c = (cols + 1).clamp(0, w + 1)
        b = torch.arange(n, device=x.device)[:, None, None]
        return pad.permute(0, 2, 3, 1)[b, r[:, :, None], c[:, None, :]].permute(0, 3, 1, 2)


class DSACutout(_Sided):
    """A zero square of half the side whose centre may sit anywhere, clipped at the border."""

    def __init__(self, ratio: float = 0.5):
        super().__init__(ratio)

    def sizes(self, x) -> tuple[int, int]:
        return self.sides(x)

    def sample(self, x):
        (ch, cw), n = self.sizes(x), x.shape[0]
        return (torch.randint(0, x.shape[2] + (1 - ch % 2), (n,), device=x.device),
                torch.randint(0, x.shape[3] + (1 - cw % 2), (n,), device=x.device))

    def apply(self, x, centre):
        (ch, cw), (h, w) = self.sizes(x), x.shape[2:]
        rows = torch.arange(h, device=x.device)[None, :]
        cols = torch.arange(w, device=x.device)[None, :]
        top, left = centre[0][:, None] - ch // 2, centre[1][:, None] - cw // 2
        in_r = (rows >= top) & (rows < top + ch)                                  # n × h
        in_c = (cols >= left) & (cols < left + cw)                                # n × w
        mask = ~(in_r[:, :, None] & in_c[:, None, :])
        return x * mask[:, None].to(x.dtype)


class DSAFlip(_Family):
    """Horizontal flip with probability 0.5 per image (kornia's flip is exactly DSA's)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p, self.op = p, K.RandomHorizontalFlip(p=p)

    def sample(self, x):
        return torch.rand(x.shape[0], device=x.device) < self.p

    def apply(self, x, flip):
        return torch.where(flip[:, None, None, None], x.flip(3), x)

    def forward(self, x):
        return self.op(x)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


class DSAScale(_Family):
    """Independent x and y scaling in [1/ratio, ratio)."""

    def __init__(self, ratio: float = 1.2):
        super().__init__()
        self.ratio = ratio

    def sample(self, x):
        lo = 1.0 / self.ratio
        return torch.rand(2, x.shape[0], device=x.device) * (self.ratio - lo) + lo

    def apply(self, x, s):
        theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 1, 1] = s[0], s[1]
        return _affine(x, theta)


class DSARotate(_Family):
    """Rotation by an angle in (−ratio°, ratio°)."""

    def __init__(self, degrees: float = 15.0):
        super().__init__()
        self.degrees = degrees

    def sample(self, x):
        return (torch.rand(x.shape[0], device=x.device) - 0.5) * 2 * self.degrees / 180 * math.pi

    def apply(self, x, a):
        theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(a), torch.sin(a)
        theta[:, 1, 0], theta[:, 1, 1] = -torch.sin(a), torch.cos(a)
        return _affine(x, theta)


def _tile(one, full):
    """One image's parameters (``one``) broadcast to the shape of a whole batch's (``full``)."""
    if isinstance(one, (tuple, list)):
        return type(one)(_tile(a, b) for a, b in zip(one, full))
    return one.expand(full.shape)


_FAMILY_OPS = {"color": DSAColor, "crop": DSACrop, "cutout": DSACutout, "flip": DSAFlip, "scale": DSAScale,
               "rotate": DSARotate}


def family(name: str) -> nn.Module:
    """One DSA family, applied to every image of the batch with its own parameters."""
    if name not in _FAMILY_OPS:
        raise ValueError(f"unknown DSA family {name!r}; expected one of {', '.join(FAMILIES)}")
    return _FAMILY_OPS[name]()


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
        return cls(tuple(f for f in FAMILIES if not (f == "flip" and name in NO_FLIP_DATASETS)))

    @property
    def strategy(self) -> str:
        return "_".join(self.names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = int(torch.randint(len(self.ops), (1,)))
        return self.ops[i](x)

    def siamese(self, *batches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """DSA's Siamese mode (``DiffAugment`` with a seed, as DM and DC use it while condensing): one
        family drawn per call, and one parameter drawn for it that every image of every batch shares
        (the official code draws per image, then copies the first draw to the whole batch, and seeds the
        real and the synthetic batch alike)."""
        i = int(torch.randint(len(self.ops), (1,)))
        op, x = self.ops[i], torch.cat(batches)
        one, full = op.sample(x[:1]), op.sample(x)
        out = op.apply(x, _tile(one, full))
        return tuple(out.split([b.shape[0] for b in batches]))

    def forward_groups(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        """``groups`` batches stacked along dim 0 (independent runs trained together): each batch
        draws its own family, as it would alone; each family runs once on the batches that drew it."""
        parts = x.reshape(groups, -1, *x.shape[1:])
        pick = torch.randint(len(self.ops), (groups,))
        out = torch.empty_like(parts)
        for i in pick.unique().tolist():
            sel = (pick == i).nonzero().view(-1).to(x.device)
            chosen = parts[sel]
            out[sel] = self.ops[i](chosen.reshape(-1, *x.shape[1:])).reshape(chosen.shape)
        return out.reshape(x.shape)


def black_level(mean, std) -> torch.Tensor:
    """Pixel value 0 (black) per channel in the space standardized by ``mean`` and ``std``."""
    return torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32)


class CropFlip(nn.Module):
    """Random crop with constant padding, then a horizontal flip: the KD, RS2 and teacher recipes.

    ``pad=None`` pads by an eighth of the side: the usual 4 pixels on 32×32, 1 on 8×8 digits. ``fill``:
    the padding value per channel in the (standardized) space of the images; None pads with 0, the
    mean colour. torchvision's ``RandomCrop`` on PIL images pads with black, i.e. ``fill = -mean / std``
    (:func:`black_level`), which the RS2 and teacher recipes use.
    """

    def __init__(self, pad: int | None = None, flip: bool = True, fill: torch.Tensor | None = None):
        super().__init__()
        self.pad = pad
        self.fill = None if fill is None else torch.as_tensor(fill, dtype=torch.float32).view(1, -1, 1, 1)
        self.flip = K.RandomHorizontalFlip(p=0.5) if flip else nn.Identity()
        self._crops: dict[tuple[int, int], nn.Module] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        pad = self.pad if self.pad is not None else max(1, round(min(size) / 8))
        if size not in self._crops:
            self._crops[size] = K.RandomCrop(size, padding=pad if self.fill is None else None, p=1.0)
        if self.fill is not None:  # pad with the fill colour, then crop the padded image back to size
            f = self.fill.to(x.device, x.dtype)
            x = F.pad(x - f, (pad, pad, pad, pad)) + f
        return self.flip(self._crops[size](x))

    def forward_groups(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        """Stacked batches of independent runs: every image has its own crop and flip already."""
        return self.forward(x)
