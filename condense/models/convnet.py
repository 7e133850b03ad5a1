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
import torch.nn.functional as F

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


class _Linear(torch.autograd.Function):
    """A linear map whose backward is another such map (its adjoint): nothing is saved for the
    backward pass, and ``vmap`` batches it by running the forward on batched tensors."""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass


class _PairMean(_Linear):
    """The mean of each 2×2 block of an NCHW tensor with even H and W: rows summed in pairs, then
    columns, ×¼. Its adjoint is :class:`_PairSpread`, so gradients of any order exist."""

    @staticmethod
    def forward(x):
        r = x[..., 0::2, :] + x[..., 1::2, :]
        return (r[..., 0::2] + r[..., 1::2]) * 0.25

    @staticmethod
    def backward(ctx, g):
        return _PairSpread.apply(g)


class _PairSpread(_Linear):
    """The adjoint of :class:`_PairMean`: each value ×¼ written into its 2×2 block (four strided
    copies into an empty tensor, with no zero fill and no sums)."""

    @staticmethod
    def forward(g):
        q = g * 0.25
        out = q.new_empty(*q.shape[:-2], 2 * q.shape[-2], 2 * q.shape[-1])
        for i in (0, 1):
            for j in (0, 1):
                out[..., i::2, j::2] = q
        return out

    @staticmethod
    def backward(ctx, g):
        return _PairMean.apply(g)


class AvgPool2x2(nn.AvgPool2d):
    """DC's 2×2, stride-2 average pooling (``nn.AvgPool2d(2, 2)``: odd edges dropped), with the same
    values, computed on a CPU by pair sums over strided views.

    PyTorch's CPU kernel for NCHW (contiguous) tensors was the slowest part of a ConvNet-3 step: 33 %
    of a bf16 step at 10 CIFAR-10 images, 2.5-9× slower forward and backward than pair sums; on a
    2-core CPU without AMX units bf16 steps are 1.15-1.19× faster at 10 and 100 images of 32×32 (fp32
    1.02-1.06×; ``benchmarks/bench_pooling.py``, ``results/bench-pooling``). Channels-last
    tensors (whose PyTorch kernel is fast), other devices and compiled graphs (which fuse it) use
    ``F.avg_pool2d``. Sums are ordered (a+b)+(c+d), so fp32 results agree with the PyTorch kernel to
    rounding (bf16: two roundings instead of one)."""

    def __init__(self):
        super().__init__(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous() or torch.compiler.is_compiling()
                or x.shape[-1] < 2 or x.shape[-2] < 2):
            return F.avg_pool2d(x, 2, 2)
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        if (h, w) != tuple(x.shape[-2:]):
            x = x[..., :h, :w]
        return _PairMean.apply(x)


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
                layers.append(AvgPool2x2())
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
