"""DSA as its code evaluates: each family's parameter ranges, its operation, and what a batch shares."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from condense.augment import DSA, CropFlip, DSACrop, DSACutout, DSAColor, DSAFlip, DSARotate, DSAScale

from .conftest import tagged_dsa


def _images(n=64, c=3, side=32):
    return torch.randn(n, c, side, side, generator=torch.Generator().manual_seed(0))


def test_crop_is_a_whole_pixel_shift_with_zero_fill_within_an_eighth_of_the_side():
    x = _images()
    torch.manual_seed(0)
    th, tw = DSACrop().sample(torch.zeros(4000, 1, 32, 32))
    assert th.dtype == torch.long and int(th.min()) == -4 and int(th.max()) == 4 and set(tw.tolist()) == set(range(-4, 5))
    out = DSACrop().apply(x[:2], (torch.tensor([1, -2]), torch.tensor([0, 3])))
    want0 = torch.zeros_like(x[0])
    want0[:, :31, :] = x[0, :, 1:, :]                        # row i reads row i + 1
    want1 = torch.zeros_like(x[1])
    want1[:, 2:, :29] = x[1, :, :30, 3:]                      # rows i - 2, columns j + 3
    assert torch.equal(out[0], want0) and torch.equal(out[1], want1)
    assert DSACrop().shifts(torch.zeros(1, 1, 28, 28)) == (4, 4)


def test_cutout_is_half_the_side_and_may_cross_the_border():
    torch.manual_seed(0)
    ch, cw = DSACutout().sample(torch.zeros(5000, 1, 32, 32))
    assert int(ch.min()) == 0 and int(ch.max()) == 32 and int(cw.max()) == 32   # centres in [0, 33)
    x = torch.ones(3, 1, 32, 32)
    out = DSACutout().apply(x, (torch.tensor([0, 16, 31]), torch.tensor([0, 16, 5])))
    zeros = (out == 0).squeeze(1)
    assert zeros[0].sum() == 8 * 8 and zeros[0, :8, :8].all()                 # crossed the corner
    assert zeros[1].sum() == 16 * 16 and zeros[1, 8:24, 8:24].all()           # inside: the full square
    assert zeros[2].sum() == 9 * 13 and zeros[2, 23:, :13].all()              # crossed two edges
    assert DSACutout().sizes(torch.zeros(1, 1, 28, 28)) == (14, 14)


def test_scale_rotate_and_color_ranges_and_identities():
    torch.manual_seed(0)
    big = torch.zeros(20000, 1, 8, 8)
    s = DSAScale().sample(big)
    assert float(s.min()) >= 1 / 1.2 and float(s.max()) < 1.2 and float(s.min()) < 0.84 and float(s.max()) > 1.19
    a = DSARotate().sample(big)
    assert float(a.abs().max()) < 15 / 180 * math.pi and float(a.abs().max()) > 14.9 / 180 * math.pi
    x = _images(4)
    assert torch.allclose(DSAScale().apply(x, torch.ones(2, 4)), x, atol=1e-5)
    assert torch.allclose(DSARotate().apply(x, torch.zeros(4)), x, atol=1e-5)
    quarter = DSARotate().apply(x, torch.full((4,), math.pi / 2))          # a right angle: a pure rotation
    assert torch.allclose(quarter, torch.rot90(x, 1, (2, 3)), atol=1e-4) or \
        torch.allclose(quarter, torch.rot90(x, -1, (2, 3)), atol=1e-4)
    u = DSAColor().sample(big)
    assert u.shape == (3, 20000, 1, 1, 1) and 0 <= float(u.min()) and float(u.max()) < 1
    mid = DSAColor().apply(x, torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1, 1, 1).expand(3, 4, 1, 1, 1))
    assert torch.allclose(mid, x, atol=1e-5)                                  # brightness 0, ×1, ×1


def test_flip_is_per_image_with_probability_one_half():
    torch.manual_seed(0)
    flips = DSAFlip().sample(torch.zeros(20000, 1, 2, 2))
    assert 0.48 < float(flips.float().mean()) < 0.52
    x = _images(2)
    out = DSAFlip().apply(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(2)) and torch.equal(out[1], x[1])


def test_a_batch_shares_its_family_and_nothing_else():
    """Mode S: one family per call for the whole batch; each image its own parameters."""
    aug = tagged_dsa(1.0, 2.0)
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        out = aug(torch.zeros(16, 1, 2, 2))
        assert out.unique().numel() == 1
        seen.add(float(out[0, 0, 0, 0]))
    assert seen == {1.0, 2.0}
    torch.manual_seed(0)
    x = torch.ones(16, 1, 4, 4)
    out = DSAColor()(x)
    assert out.flatten(1).mean(1).unique().numel() == 16                     # per-image factors
    th, _ = DSACrop().sample(torch.zeros(16, 1, 32, 32))
    assert th.unique().numel() > 1


def test_flip_follows_dcs_rule_per_dataset_and_the_recipes_keep_theirs():
    assert "flip" in DSA.for_dataset("cifar10").names and "flip" in DSA.for_dataset("fashion-mnist").names
    for name in ("mnist", "svhn", "digits"):
        assert "flip" not in DSA.for_dataset(name).names and len(DSA.for_dataset(name).names) == 5
    with pytest.raises(ValueError, match="unknown DSA family"):
        DSA(("color", "blur"))
    assert isinstance(CropFlip(flip=False).flip, nn.Identity)


def test_every_family_keeps_shape_device_and_gradient():
    x = _images(8).requires_grad_(True)
    for op in (DSAColor(), DSACrop(), DSACutout(), DSAFlip(), DSAScale(), DSARotate()):
        out = op(x)
        assert out.shape == x.shape
        out.sum().backward()
        assert x.grad is not None
        x.grad = None
