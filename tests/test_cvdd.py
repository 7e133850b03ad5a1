"""CV-DD's building blocks: the committee schedule and weights, the committee loss, synthesis and BSSL."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from condense.methods.cvdd import (bssl_logits, committee_loss, committee_schedule, committee_weights,
                                   crop_flip_roll, patch_init, resized_crop_box, synthesize)
from condense.methods.infer import BNStatLoss
from condense.models import create_model

CIFAR10_PRIORS = (63.01, 65.25, 68.52, 67.61, 67.57)  # ResNet-18, ResNet-50, ShuffleNetV2, MobileNetV2, DenseNet-121


def test_committee_schedule_per_ipc_index():
    """IPC 1: the two best priors (ShuffleNetV2 and MobileNetV2 on CIFAR-10); IPC 10: pair i of the
    ten pairs of five in order; other IPCs: two distinct members per index, drawn with the seed;
    committee 1: the pool's first teacher alone (SRe2L++: ResNet-18 in the paper pool)."""
    assert committee_schedule(CIFAR10_PRIORS, 1) == [(2, 3)]
    assert committee_schedule(CIFAR10_PRIORS, 10) == list(itertools.combinations(range(5), 2))
    fifty = committee_schedule(CIFAR10_PRIORS, 50, seed=3)
    assert len(fifty) == 50 and all(len(set(c)) == 2 for c in fifty)
    assert fifty == committee_schedule(CIFAR10_PRIORS, 50, seed=3) != committee_schedule(CIFAR10_PRIORS, 50, seed=4)
    assert len(set(fifty)) > 5  # drawn per index, not one pair for all
    assert committee_schedule(CIFAR10_PRIORS, 10, size=1) == [(0,)] * 10


def test_ipc1_committee_is_the_official_hand_picked_pair():
    """recover.py (model_setting 4): CIFAR-10 and ImageNette take MobileNetV2 + DenseNet-121, CIFAR-100
    ShuffleNetV2 + MobileNetV2, every other dataset the two best priors; so does a pool without the pair's
    architectures, and ipc1_rule="priors" everywhere."""
    from condense.methods.committee import official_ipc1_pair
    from condense.methods.cvdd import PAPER_POOL, QUICK_POOL_CVDD, CVDDConfig
    assert PAPER_POOL == ("resnet18", "resnet50", "shufflenetv2_x0_5", "mobilenetv2_cifar", "densenet121")
    assert official_ipc1_pair(PAPER_POOL, "cifar10") == (3, 4)
    assert official_ipc1_pair(PAPER_POOL, "imagenette") == (3, 4)
    assert official_ipc1_pair(PAPER_POOL, "cifar100") == (2, 3)
    assert official_ipc1_pair(PAPER_POOL, "tinyimagenet") is None
    assert official_ipc1_pair(QUICK_POOL_CVDD, "cifar10") is None
    # the pair replaces the two best priors (ShuffleNetV2 + MobileNetV2 by CIFAR-10's priors)
    assert committee_schedule(CIFAR10_PRIORS, 1, pair=(3, 4)) == [(3, 4)]
    assert committee_schedule(CIFAR10_PRIORS, 1) == [(2, 3)]
    assert committee_schedule(CIFAR10_PRIORS, 10, pair=(3, 4)) == list(itertools.combinations(range(5), 2))
    assert CVDDConfig().ipc1_rule == "official"
    with pytest.raises(ValueError, match="ipc1_rule must be one of 'official', 'priors'"):
        CVDDConfig(ipc1_rule="best")


def test_jpeg_roundtrip_changes_pixels_as_pil_does():
    """The official images are quality-75 JPEGs: the round-trip is lossy, deterministic, follows the
    quality (a higher quality is closer to the input), keeps grey images grey, and is what PIL decodes."""
    import io

    import numpy as np
    from PIL import Image

    from condense.methods._common import jpeg_roundtrip
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = jpeg_roundtrip(x)
    assert y.dtype == torch.uint8 and y.shape == x.shape and not torch.equal(x, y)
    assert torch.equal(y, jpeg_roundtrip(x))
    err = lambda q: (jpeg_roundtrip(x, q).float() - x.float()).abs().mean()  # noqa: E731
    assert err(95) < err(75) < err(20)
    buf = io.BytesIO()
    Image.fromarray(x[1].permute(1, 2, 0).numpy()).save(buf, format="JPEG")  # PIL's defaults
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(buf.getvalue()))).transpose(2, 0, 1), y[1].numpy())
    grey = torch.randint(0, 256, (2, 1, 28, 28), generator=g, dtype=torch.uint8)
    assert jpeg_roundtrip(grey).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="uint8 images of shape"):
        jpeg_roundtrip(x.float())


def test_committee_schedule_refuses_a_pool_too_small():
    with pytest.raises(ValueError, match="a committee of 2 needs a pool of at least 2"):
        committee_schedule((60.0,), 10)
    with pytest.raises(ValueError, match="IPC-10 committees are the pool's pairs.*4 teachers has 6 pairs"):
        committee_schedule((60.0, 61.0, 62.0, 63.0), 10)
    with pytest.raises(ValueError, match="1 \\(SRe2L\\+\\+\\) or 2 members"):
        committee_schedule(CIFAR10_PRIORS, 10, size=3)


def test_weights_are_a_softmax_of_priors_over_the_temperature():
    w = committee_weights((63.01, 65.25), 5.0)
    a, b = math.exp(63.01 / 5), math.exp(65.25 / 5)
    assert w.tolist() == pytest.approx([a / (a + b), b / (a + b)], rel=1e-6)
    assert committee_weights((63.01, 65.25), 10.0)[1] < w[1]  # a higher temperature flattens


def _teacher(seed: int, width: int = 8):
    torch.manual_seed(seed)
    m = create_model("convnet_bn", (3, 8, 8), 4, width=width, depth=2)
    with torch.no_grad():  # running statistics away from (0, 1), as a trained teacher has
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_committee_loss_is_the_weighted_sum_of_ce_and_bn_with_the_first_layer_times_ten():
    """Eq. 6 by hand: per member CE + r_bn·(10·‖Δσ²₁‖ + 10·‖Δμ₁‖ + ‖Δσ²₂‖ + ‖Δμ₂‖), statistics of each
    BN layer's input over (N, H, W) with biased variance, weighted by the committee weights."""
    models = [_teacher(0), _teacher(1)]
    w = committee_weights((60.0, 64.0), 5.0)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    bns = [BNStatLoss(m, 4, 10.0) for m in models]
    got = committee_loss(models, w, bns, x, y, r_bn=0.01)
    want = 0.0
    for m, wk in zip(models, w.tolist()):
        inputs = []
        hooks = [mod.register_forward_hook(lambda mod, i, o: inputs.append((mod, i[0])))
                 for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
        ce = F.cross_entropy(m(x), y)
        for h in hooks:
            h.remove()
        bn = 0.0
        for layer, (mod, h) in enumerate(inputs):
            mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
            bn += (10.0 if layer == 0 else 1.0) * (torch.norm(var - mod.running_var) + torch.norm(mean - mod.running_mean))
        want += wk * (ce + 0.01 * bn)
    assert len(inputs) == 2
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-5)


def _hand_bn_forward(m, x):
    """A depth-2 BN ConvNet with BatchNorm on the batch's own statistics, written out."""
    h = x
    mods = list(m.features)
    i = 0
    while i < len(mods):
        conv, bn = mods[i], mods[i + 1]
        h = conv(h)
        mean, var = h.mean((0, 2, 3), keepdim=True), h.var((0, 2, 3), unbiased=False, keepdim=True)
        h = (h - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
        h = F.avg_pool2d(F.relu(h), 2)
        i += 4
    return m.classifier(h.flatten(1))


def test_bssl_uses_the_batch_statistics_of_each_half():
    """Train-mode BN on the two halves of every batch of 16 (split at len // 2, so a last batch of 4 is
    two halves of 2, as the official relabelling splits): the labels equal a hand computation with each
    half's own statistics, differ from eval-mode labels (running statistics), and leave the teachers'
    running statistics untouched."""
    models = [_teacher(0), _teacher(1)]
    w = committee_weights((60.0, 64.0), 10.0)
    x = torch.randn(20, 3, 8, 8)  # 16 + 4: the last batch holds one short chunk
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    got = bssl_logits(models, w, x)
    with torch.no_grad():
        want = torch.cat([sum(wk * _hand_bn_forward(m, xb) for m, wk in zip(models, w.tolist()))
                          for xb in (x[:8], x[8:16], x[16:18], x[18:])])
        eval_mode = sum(wk * m(x) for m, wk in zip(models, w.tolist()))
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, eval_mode, atol=1e-2)
    for m, b in zip(models, before):
        assert all(torch.equal(v, b[k]) for k, v in m.state_dict().items())
        assert not m.training


def test_patch_init_is_a_mosaic_of_four_real_images_of_the_class():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, 8, 8)
    labels = torch.arange(40) % 4
    mosaics, idx = patch_init(images, labels, 4, 2, g)
    assert mosaics.shape == (8, 3, 8, 8) and idx.shape == (2, 4, 4)
    assert all((labels[idx[k, c]] == c).all() and idx[k, c].unique().numel() == 4 for k in range(2) for c in range(4))
    quarter = F.interpolate(images[idx[1, 3, 2]][None], size=(4, 4), mode="bilinear", antialias=True)[0]
    assert torch.allclose(mosaics[1 * 4 + 3][:, 4:, :4], quarter, atol=1e-6)  # bottom-left: the third image


def test_crop_flip_roll_is_one_draw_per_batch_and_seeded():
    for s in range(50):
        top, left, h, w = resized_crop_box(32, 32, torch.Generator().manual_seed(s))
        assert 0 <= top and 0 <= left and top + h <= 32 and left + w <= 32 and h > 0 and w > 0
    x = torch.rand(1, 3, 16, 16).repeat(3, 1, 1, 1)
    a = crop_flip_roll(x, torch.Generator().manual_seed(1), 4)
    b = crop_flip_roll(x, torch.Generator().manual_seed(1), 4)
    assert torch.equal(a, b) and torch.equal(a[0], a[1]) and torch.equal(a[0], a[2])  # one draw for the batch


def test_synthesis_lowers_the_committee_loss_and_keeps_pixels_in_range():
    models = [_teacher(0), _teacher(1)]
    for m in models:
        for p in m.parameters():
            p.requires_grad_(False)
    w = committee_weights((60.0, 64.0), 5.0)
    y = torch.arange(4)
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    lo, hi = torch.full((1, 3, 1, 1), -1.0), torch.full((1, 3, 1, 1), 1.0)

    def loss(x):
        bns = [BNStatLoss(m, 4, 10.0) for m in models]
        try:
            return float(committee_loss(models, w, bns, x, y, 0.01))
        finally:
            for b in bns:
                b.close()

    x = synthesize(models, [(0, 1)], [w.tolist()], x0, y, iterations=60, lr=0.1, r_bn=0.01,
                   first_bn_multiplier=10.0, jitter=1, lo=lo, hi=hi, g=torch.Generator().manual_seed(0))
    assert loss(x) < 0.95 * loss(x0)  # optimised under random resized crops, measured without them
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_synthesis_follows_the_gradient_of_eq6(monkeypatch):
    """What ``synthesize`` optimises is Eq. 6 as :func:`committee_loss` computes it (checked by hand
    above): its first gradient on the pixels equals the gradient of ``committee_loss`` on the same
    augmented batch (the draws replayed from the same generator state)."""
    import condense.methods.cvdd as cvdd

    models = [_teacher(0), _teacher(1)]
    for m in models:
        for p in m.parameters():
            p.requires_grad_(False)
    w = committee_weights((60.0, 64.0), 5.0)
    x0, y = torch.rand(4, 3, 8, 8) * 2 - 1, torch.arange(4)
    grads = []

    class Recorder(torch.optim.SGD):  # the pixels' gradient at the first step, then no update
        def step(self, closure=None):
            grads.append(self.param_groups[0]["params"][0].grad.clone())

    monkeypatch.setattr(cvdd.torch.optim, "Adam", lambda params, **kw: Recorder(params, lr=kw["lr"]))
    big = (torch.full((1, 3, 1, 1), -9.0), torch.full((1, 3, 1, 1), 9.0))
    synthesize(models, [(0, 1)], [w.tolist()], x0, y, iterations=1, lr=0.1, r_bn=0.01, first_bn_multiplier=10.0,
               jitter=1, lo=big[0], hi=big[1], g=torch.Generator().manual_seed(5))
    x = x0.clone().requires_grad_(True)
    bns = [BNStatLoss(m, 4, 10.0) for m in models]
    try:
        committee_loss(models, w, bns, crop_flip_roll(x, torch.Generator().manual_seed(5), 1), y, 0.01).backward()
    finally:
        for b in bns:
            b.close()
    assert len(grads) == 1 and grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], x.grad, atol=1e-6)


def test_batches_recovered_together_equal_batches_recovered_alone():
    """All IPC indices are optimised in one loop (one Adam over all pixels, every member forwarding the
    batches it votes on): each batch ends exactly where its own run, with its own committee, ends."""
    models = [_teacher(0), _teacher(1), _teacher(2)]
    for m in models:
        for p in m.parameters():
            p.requires_grad_(False)
    committees = [(0, 1), (1, 2)]
    weights = [committee_weights((60.0, 64.0), 5.0).tolist(), committee_weights((64.0, 62.0), 5.0).tolist()]
    x0, y = torch.rand(8, 3, 8, 8) * 2 - 1, torch.arange(4).repeat(2)
    lo, hi = torch.full((1, 3, 1, 1), -1.0), torch.full((1, 3, 1, 1), 1.0)
    kw = dict(iterations=5, lr=0.1, r_bn=0.01, first_bn_multiplier=10.0, jitter=1, lo=lo, hi=hi)

    together = synthesize(models, committees, weights, x0, y, g=torch.Generator().manual_seed(0), **kw)
    # The joint run draws batch 0's and batch 1's augmentation in turn; alone, each batch gets the
    # draws the joint run gave it.
    g = torch.Generator().manual_seed(0)
    draws = []
    for _ in range(5):
        for b in range(2):
            state = g.get_state()
            crop_flip_roll(x0[:4], g, 1)
            draws.append(state)
    for b in range(2):
        states = iter(draws[b::2])

        def replay_aug(x, _g, jitter, states=states):
            gg = torch.Generator()
            gg.set_state(next(states))
            return crop_flip_roll(x, gg, jitter)

        import condense.methods.cvdd as cvdd
        real = cvdd.crop_flip_roll
        cvdd.crop_flip_roll = replay_aug
        try:
            alone = synthesize(models, [committees[b]], [weights[b]], x0[4 * b:4 * b + 4], y[:4],
                               g=torch.Generator(), **kw)
        finally:
            cvdd.crop_flip_roll = real
        assert torch.allclose(alone, together[4 * b:4 * b + 4], atol=1e-5)
