"""RDED (condense.methods.rded): the realism score by hand, each image's best crop then the class's best
images, stitching factor × factor cells, and a condensation of digits with replay labels of its views."""
from __future__ import annotations

import math

import pytest
import torch

from condense.data import load_dataset
from condense.methods import create_condenser
from condense.methods.rded import RDEDConfig, centre_pad, random_square_crops, realism_scores, select, stitch
from condense.protocols import get_protocol


class FixedObserver(torch.nn.Module):
    """Logits read off the first pixel: class 0's logit is x[0, 0, 0, 0] (others zero)."""

    def forward(self, x):
        out = torch.zeros(x.shape[0], 3)
        out[:, 0] = x[:, 0, 0, 0]
        return out


def test_realism_score_is_the_observer_cross_entropy():
    crops = torch.zeros(2, 3, 1, 4, 4)        # m=2 crops of n=3 images, 4×4, padded to 4 (no padding)
    crops[0, :, 0, 0, 0] = torch.tensor([0.0, 1.0, 2.0])
    crops[1, :, 0, 0, 0] = torch.tensor([3.0, -1.0, 0.5])
    s = realism_scores(FixedObserver(), crops, 0, 4)
    # −log p(0) = log(e^a + 2) − a for class-0 logit a
    expect = torch.tensor([[math.log(math.exp(a) + 2) - a for a in row] for row in ([0, 1, 2], [3, -1, 0.5])])
    assert torch.allclose(s, expect, atol=1e-6)
    chosen, order = select(crops, s, 2)
    # best crop per image: image 0 → crop 1 (a=3), image 1 → crop 0 (a=1), image 2 → crop 0 (a=2); best two: 0, 2
    assert order.tolist() == [0, 2]
    assert chosen[:, 0, 0, 0].tolist() == [3.0, 2.0]


def test_centre_pad_and_square_crops():
    x = torch.ones(1, 1, 3, 3)
    p = centre_pad(x, 6)
    assert p.shape == (1, 1, 6, 6) and float(p.sum()) == 9 and float(p[0, 0, 1:4, 1:4].sum()) == 9
    g = torch.Generator().manual_seed(0)
    crops = random_square_crops(torch.rand(4, 3, 8, 8), 5, 4, g)
    assert crops.shape == (5, 4, 3, 4, 4)


def test_stitch_places_cells_row_major():
    n, side, factor = 2, 5, 2                   # cells 3 and 2 pixels: the first row and column larger
    crops = torch.arange(factor * factor * n, dtype=torch.float).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    out = stitch(crops, n, side, factor)
    assert out.shape == (2, 1, 5, 5)
    # image t, cell (i, j) comes from crop (i·factor + j)·n + t
    assert out[1, 0, 0, 0] == 1 and out[1, 0, 0, 4] == 3 and out[1, 0, 4, 0] == 5 and out[1, 0, 4, 4] == 7
    assert out[0, 0, 2, 2] == 0 and out[0, 0, 3, 3] == 6


@pytest.mark.parametrize("field, value", [("factor", 0), ("num_crop", 0), ("soft_labels", "hard"), ("image_io", "png")])
def test_config_ranges(field, value):
    with pytest.raises(ValueError, match=f"rded.{field}"):
        RDEDConfig(**{field: value})


def test_condense_digits_with_replay_labels():
    train = load_dataset("digits", "train")
    cond = create_condenser("rded", "quick", teacher_recipe="tiny", mipc=20, replay_epochs=2)
    fkd = cond.for_protocol(get_protocol("fkd", "quick"))
    assert fkd.config.replay_epochs == get_protocol("fkd", "quick").passes  # fkd replays the protocol's epochs
    s = cond.condense(train, 2, seed=0)
    assert s.images.dtype == torch.uint8 and s.images.shape == (20, 1, 8, 8)
    assert s.soft_label_policy == "replay" and tuple(s.soft_labels.shape) == (2, 20, 10)
    src = torch.tensor(s.extra["source_indices"]).view(-1)
    assert train.labels[src].tolist() == s.labels.tolist()  # every crop comes from an image of its class
    assert s.teacher_seconds > 0 and "jpeg" in s.extra["image_io"]
