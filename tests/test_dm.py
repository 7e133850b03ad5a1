"""DM (Zhao & Bilen, WACV 2023): the mean-embedding loss, Siamese DSA, and the pixel optimiser."""
from __future__ import annotations

import pytest
import torch

from condense.augment import DSA
from condense.format import load, save
from condense.methods import create_condenser
from condense.methods.dm import DMConfig, dm_loss


def test_loss_is_the_squared_distance_of_class_mean_embeddings():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 12, generator=g)
    embed = lambda x: x.flatten(1) @ w.T  # noqa: E731
    real = [torch.randn(7, 3, 2, 2, generator=g) for _ in range(3)]
    syn = [torch.randn(2, 3, 2, 2, generator=g, requires_grad=True) for _ in range(3)]
    want = sum(((embed(r).mean(0) - embed(s).mean(0)) ** 2).sum() for r, s in zip(real, syn))
    got = dm_loss(embed, real, syn, None)
    assert torch.allclose(got, want)
    got.backward()
    assert all(s.grad is not None for s in syn)


def test_siamese_dsa_shares_one_draw_across_both_batches_and_every_image():
    """The official seed trick: the real and the synthetic batch get the same family and the same draw,
    and Siamese mode copies the first image's draw to the whole batch."""
    aug = DSA.for_dataset("cifar10")
    img = torch.randn(1, 3, 16, 16)
    torch.manual_seed(0)
    for _ in range(40):  # every family comes up
        a, b = aug.siamese(img.expand(5, -1, -1, -1).clone(), img.expand(2, -1, -1, -1).clone())
        assert a.shape == (5, 3, 16, 16) and b.shape == (2, 3, 16, 16)
        assert torch.allclose(a, a[:1].expand_as(a)) and torch.allclose(b, a[:2])
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    (y,) = aug.siamese(x)
    y.sum().backward()
    assert x.grad is not None


def test_one_step_is_sgd_on_the_pixels_against_eq4(digits, monkeypatch):
    """With the embedding network fixed and DSA off, one DM iteration moves the synthetic images by
    exactly -lr times the gradient of Eq. 4 (momentum has nothing to carry yet)."""
    import condense.methods.dm as dm

    torch.manual_seed(0)
    net = dm.create_model("convnet", digits["train"].shape, 10)
    monkeypatch.setattr(dm, "create_model", lambda *a, **k: net)
    cond = create_condenser("dm", "quick", iterations=1, dsa=False, batch_real=16, lr=0.5)
    s = cond.condense(digits["train"], 2, seed=3)
    train = digits["train"]
    x0 = train.normalize(train.images[torch.tensor(s.extra["source_indices"])])
    # replay the real batches the condenser drew after its init draw
    g = dm.generator(3)
    pools = dm.per_class_indices(train.labels, 10)
    [p[torch.randperm(len(p), generator=g)[:2]] for p in pools]
    x_all = train.normalize(train.images)
    real = [x_all[p[torch.randperm(len(p), generator=g)[:16]]] for p in pools]
    syn = x0.clone().requires_grad_(True)
    for p in net.parameters():
        p.requires_grad_(False)
    dm_loss(net.embed, real, list(syn.split(2)), None).backward()
    assert torch.allclose(s.images, (x0 - 0.5 * syn.grad).float(), atol=1e-5)
    assert s.labels.tolist() == [c for c in range(10) for _ in range(2)]


def test_dm_end_to_end_on_digits(digits, tmp_path):
    s = create_condenser("dm", "quick", iterations=3, batch_real=32).condense(digits["train"], 2, seed=0)
    assert s.image_encoding == "model-input" and s.images.dtype == torch.float32 and s.num_instances() == 20
    assert s.extra["dsa"].endswith("(Siamese)") and s.extra["init"] == "real"
    back = load(save(s, tmp_path / "dm.h5"))
    assert torch.equal(back.images, s.images)
    noise = create_condenser("dm", "quick", iterations=1, init="noise", batch_real=8).condense(digits["train"], 1, seed=0)
    assert "source_indices" not in noise.extra
    with pytest.raises(ValueError, match="dm.init must be one of 'real', 'noise'"):
        DMConfig(init="zeros")
    assert DMConfig.preset("paper").iterations == 20_000 and DMConfig.preset("paper").lr == 1.0
