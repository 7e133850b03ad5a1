"""K ConvNets of one architecture as one network: grouped convolutions over stacked channels.

Model ``k`` owns channels ``[k·C, (k+1)·C)`` of every layer. Its convolutions become one convolution
with ``groups=K``; per-channel layers (instance norm, batch norm, ReLU, pooling) act on each model's
channels alone; layer norm is a ``GroupNorm`` with one group per model; the classifier is a batched
matrix product. The stacked network computes exactly the K separate forward passes, and the gradient
of the sum of the K losses with respect to model k's parameters is the gradient of model k's own
loss, so SGD or Adam on the stack (elementwise updates) trains the K models independently.

Inputs are ``(B, K·C, H, W)``: model k's batch in its channel group (:func:`stack_inputs`); outputs
are ``(B, K, classes)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .convnet import ConvNet


def stackable(model: nn.Module) -> bool:
    """Whether :class:`StackedConvNet` can hold this model (the DC ConvNet family)."""
    return isinstance(model, ConvNet)


def _cat(tensors, dim: int = 0) -> nn.Parameter:
    return nn.Parameter(torch.cat([t.detach() for t in tensors], dim).clone())


def _stack_layer(layers: list[nn.Module], k: int) -> nn.Module:
    first = layers[0]
    if isinstance(first, nn.Conv2d):
        c_in, c_out = first.in_channels, first.out_channels
        conv = nn.Conv2d(k * c_in, k * c_out, first.kernel_size, first.stride, first.padding, groups=k,
                         bias=first.bias is not None).to(first.weight.device, first.weight.dtype)
        conv.weight = _cat([m.weight for m in layers])
        if first.bias is not None:
            conv.bias = _cat([m.bias for m in layers])
        return conv
    if isinstance(first, nn.GroupNorm):
        c = first.num_channels
        if first.num_groups not in (c, 1):
            raise ValueError(f"cannot stack GroupNorm({first.num_groups}, {c})")
        groups = k * c if first.num_groups == c else k  # instance norm: per channel; layer norm: per model
        gn = nn.GroupNorm(groups, k * c, eps=first.eps, affine=first.affine)
        if first.affine:
            gn.weight, gn.bias = _cat([m.weight for m in layers]), _cat([m.bias for m in layers])
        return gn
    if isinstance(first, nn.BatchNorm2d):
        bn = nn.BatchNorm2d(k * first.num_features, eps=first.eps, momentum=first.momentum,
                            affine=first.affine).to(first.running_mean.device)
        if first.affine:
            bn.weight, bn.bias = _cat([m.weight for m in layers]), _cat([m.bias for m in layers])
        bn.running_mean.copy_(torch.cat([m.running_mean for m in layers]))
        bn.running_var.copy_(torch.cat([m.running_var for m in layers]))
        bn.num_batches_tracked.copy_(first.num_batches_tracked)
        return bn
    if isinstance(first, (nn.ReLU, nn.AvgPool2d, nn.MaxPool2d, nn.Identity)):
        return first
    raise ValueError(f"cannot stack layer {type(first).__name__}")


class StackedConvNet(nn.Module):
    """K :class:`ConvNet` models of one shape, trained as one (see the module docstring)."""

    def __init__(self, models: list[ConvNet]):
        super().__init__()
        if not models or not all(stackable(m) for m in models):
            raise ValueError("StackedConvNet needs one or more ConvNet models")
        shapes = {tuple((n, tuple(p.shape)) for n, p in m.named_parameters()) for m in models}
        if len(shapes) != 1:
            raise ValueError("StackedConvNet needs models of one architecture")
        self.k = len(models)
        ref = models[0]
        self.features = nn.Sequential(*(_stack_layer([m.features[i] for m in models], self.k)
                                        for i in range(len(ref.features))))
        self.weight = nn.Parameter(torch.stack([m.classifier.weight.detach() for m in models]).clone())
        self.bias = nn.Parameter(torch.stack([m.classifier.bias.detach() for m in models]).clone())
        self.train(ref.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        h = h.reshape(h.shape[0], self.k, -1)  # model k's channels, flattened as ConvNet flattens them
        return torch.einsum("bkf,knf->bkn", h, self.weight) + self.bias

    @torch.no_grad()
    def unstack_into(self, models: list[ConvNet]) -> list[ConvNet]:
        """Copy each model's slice of the stack back into ``models`` (same order); returns them."""
        for k, m in enumerate(models):
            for i, layer in enumerate(self.features):
                own = m.features[i]
                for name, p in list(own.named_parameters(recurse=False)) + list(own.named_buffers(recurse=False)):
                    src = getattr(layer, name)
                    if name == "num_batches_tracked":
                        p.copy_(src)
                    else:
                        n = p.shape[0]
                        p.copy_(src[k * n:(k + 1) * n])
            m.classifier.weight.copy_(self.weight[k])
            m.classifier.bias.copy_(self.bias[k])
            m.train(self.training)
        return models


def stack_inputs(xs: list[torch.Tensor]) -> torch.Tensor:
    """K batches of ``(B, C, H, W)`` (one per model, equal sizes) as one ``(B, K·C, H, W)`` input."""
    x = torch.stack(xs, 1)
    return x.reshape(x.shape[0], -1, *x.shape[3:])
