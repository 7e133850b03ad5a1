"""INFER and the teacher pool: BN matching, shared UFCs, the ipc_init budget, soft labels, caching."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import condense
from condense.evaluate import evaluate, mixup
from condense.methods import create_condenser
from condense.methods.infer import BNStatLoss, ipc_init, optimize_ufcs
from condense.protocols import get_protocol
from condense.teachers import TeacherRecipe, train_teacher

TINY = dict(teacher_recipe="tiny", iterations=15)


@pytest.fixture
def cache(fresh_cache):
    return fresh_cache


def test_ipc_init_arithmetic_and_its_error(digits, cache):
    assert [ipc_init(ipc, 4, 10) for ipc in (1, 2, 10, 50)] == [0, 1, 7, 35]
    assert ipc_init(10, 4, 100) == 9 and ipc_init(50, 4, 100) == 48
    with pytest.raises(ValueError, match=r"ipc_init = int\(ipc / \(M/C \+ 1\)\) >= 1.*ipc=1"):
        create_condenser("infer", "quick", **TINY).condense(digits["train"], 1, seed=0)


def test_bn_loss_is_zero_when_batch_stats_equal_running_stats():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    net = nn.Sequential(bn, nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
    x = torch.randn(8, 3, 4, 4) * 2 + 1
    loss = BNStatLoss(net, group_size=4, first_multiplier=10.0)
    net(x)
    assert (loss.pop() > 0).all()
    groups = x.view(2, 4, 3, 4, 4).transpose(1, 2).flatten(2)  # one group's stats become the running ones
    bn.running_mean.copy_(groups[0].mean(-1))
    bn.running_var.copy_(groups[0].var(-1, unbiased=False))
    net(x)
    per_group = loss.pop()
    assert per_group[0].abs() < 1e-5 and per_group[1] > 1e-2
    loss.close()


def test_one_ufc_is_shared_by_all_classes_of_its_batch(digits, cache):
    s = create_condenser("infer", "quick", **TINY).condense(digits["train"], 10, seed=0)
    k, m, c = 7, 4, 10
    assert s.images.shape[0] == k * c and s.compensators["values"].shape == (m * k, 1, 8, 8)
    assert s.compensators["batch"].tolist() == list(range(k)) * m
    x, y = s.instances()
    assert x.shape[0] == k * c * (m + 1) == s.num_instances() and torch.equal(y[:k * c], s.labels)
    base = s.float_images()
    u = s.compensator_values()
    lo = (0 - s.mean[0]) / s.std[0]
    hi = (1 - s.mean[0]) / s.std[0]
    first = x[k * c:k * c + c]                   # compensator 0 applied to the 10 images of batch 0
    assert torch.allclose(first, (base[:c] + u[0]).clamp(lo, hi), atol=1e-5)
    assert sorted(s.labels[:c].tolist()) == list(range(10))  # one real image per class in a batch
    # the bytes: real images + UFCs fit the budget of ipc x C images
    assert s.storage_bytes["images"] + s.compensators["values"].numel() <= 10 * 10 * 64


def test_vectorized_ufcs_equal_batch_by_batch(digits, cache):
    from condense.methods.infer import InferConfig

    t = train_teacher(digits["train"], "convnet_bn-w32", TeacherRecipe.preset("tiny"))
    x = digits["train"].normalize(digits["train"].images[:20])
    y = torch.arange(10).repeat(2)
    cfg = InferConfig(iterations=5, jitter=1)
    both = optimize_ufcs(t.model, x, y, 2, cfg, torch.Generator().manual_seed(0))
    one = optimize_ufcs(t.model, x[:10], y[:10], 1, cfg, torch.Generator().manual_seed(0))
    assert torch.allclose(both[0], one[0], atol=1e-5)


def test_static_soft_labels_and_mixup_interpolation(digits, cache, tmp_path):
    s = create_condenser("infer", "quick", **TINY).condense(digits["train"], 10, seed=0)
    assert s.soft_label_policy == "static" and s.soft_labels.shape == (350, 10)
    assert s.soft_labels.dtype == torch.float16
    t = condense.load(condense.save(s, tmp_path / "infer.h5"))
    assert t.format_version == 2 and torch.equal(t.compensators["values"], s.compensators["values"])
    xs, ys, soft = t.dataset()[340]
    assert soft.shape == (10,) and xs.shape == (1, 8, 8)
    from condense.__main__ import main

    assert main(["export", str(tmp_path / "infer.h5"), "--png", str(tmp_path / "png")]) == 0
    assert {p.name for p in (tmp_path / "png").iterdir()} == {"grid.png", "instances.png", "compensators.png"}
    torch.manual_seed(0)
    x = torch.randn(6, 1, 8, 8)
    logits = torch.randn(6, 10)
    xm, sm = mixup(x, logits, 0.8, torch.Generator().manual_seed(1))
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(1))
    lam = float(((xm - x[perm]) / (x - x[perm]))[0].flatten()[0])
    assert torch.allclose(xm, lam * x + (1 - lam) * x[perm], atol=1e-5)
    assert torch.allclose(sm, lam * logits + (1 - lam) * logits[perm], atol=1e-5)


def test_soft_labels_are_the_mean_teacher_logits_of_each_composed_instance_in_order(digits, cache, tmp_path):
    """Each stored soft label is the mean over the pool of the teachers' logits on the very instance
    it labels, as loaded from the file (a shuffled, per-image or single-teacher label would fail)."""
    from condense.teachers import QUICK_POOL, teacher_pool

    s = condense.load(condense.save(create_condenser("infer", "quick", **TINY).condense(digits["train"], 10, seed=0),
                                    tmp_path / "infer.h5"))
    pool = teacher_pool(digits["train"], QUICK_POOL, TeacherRecipe.preset("tiny"))  # the cached pool
    x, _ = s.instances()
    with torch.no_grad():
        each = torch.stack([t.model(x) for t in pool])
    assert torch.allclose(s.soft_labels.float(), each.mean(0), atol=2e-2, rtol=2e-3)
    assert not torch.allclose(s.soft_labels.float(), each[0], atol=2e-2, rtol=2e-3)
    assert not torch.allclose(s.soft_labels.float(), each.mean(0).roll(1, 0), atol=2e-2, rtol=2e-3)


def test_teacher_cache_hits_and_resume(digits, cache, monkeypatch):
    recipe = TeacherRecipe(name="t", epochs=3, batch_size=256)
    a = train_teacher(digits["train"], "convnet_bn-w32", recipe)
    b = train_teacher(digits["train"], "convnet_bn-w32", recipe)
    assert not a.cached and b.cached and b.train_seconds == a.train_seconds and b.val_acc == a.val_acc
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    # interrupt a fresh teacher after its first epoch, then resume: same weights as uninterrupted
    import condense.teachers as T

    real = T._atomic_torch_save
    calls = {"n": 0}

    def crash_after_first(obj, path):
        real(obj, path)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(T, "_atomic_torch_save", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(digits["train"], "convnet_bn-w32", recipe, seed=1)
    monkeypatch.setattr(T, "_atomic_torch_save", real)
    resumed = train_teacher(digits["train"], "convnet_bn-w32", recipe, seed=1)
    assert not resumed.cached
    import shutil

    shutil.rmtree(cache / "teachers")
    straight = train_teacher(digits["train"], "convnet_bn-w32", recipe, seed=1)
    assert all(torch.allclose(p, q) for p, q in zip(resumed.model.state_dict().values(),
                                                   straight.model.state_dict().values()))


def test_end_to_end_on_digits(digits, cache):
    s = create_condenser("infer", "quick", **TINY).condense(digits["train"], 10, seed=0)
    assert s.teacher_seconds > 0 and s.condense_seconds >= s.teacher_seconds
    assert [t["arch"] for t in s.extra["teachers"]] == list(s.method_config["teachers"])
    kd = evaluate(s, digits["test"], seeds=[0], protocol=get_protocol("kd", "quick", epochs=10, checkpoints=2))
    dc = evaluate(s, digits["test"], seeds=[0], protocol=get_protocol("dc", "quick", epochs=10, checkpoints=2))
    assert kd.protocol["name"] == "kd" and dc.protocol["name"] == "dc"
    # the step budget of the plain 100-image set (11 passes of one step), not of INFER's 350 instances
    assert dc.runs[0].steps == 11 and kd.runs[0].steps == 20  # kd: 10 passes of [64, 36]
    assert dc.plan["samples"] == 1100 and kd.plan["reference_size"] == 100 and kd.plan["set_size"] == 350
    ep = evaluate(s, digits["test"], seeds=[0],
                  protocol=get_protocol("dc", "quick", epochs=10, checkpoints=2, budget="epochs"))
    assert ep.runs[0].steps == 22 and ep.mean > 30  # the old epoch rule: 11 passes over 350 instances
    random = create_condenser("random").condense(digits["train"], 10, seed=0)
    with pytest.raises(ValueError, match="random-kd"):
        evaluate(random, digits["test"], seeds=[0], protocol="kd")
    rk = create_condenser("random-kd", "quick", teacher_recipe="tiny").condense(digits["train"], 10, seed=0)
    assert rk.soft_labels.shape == (100, 10) and rk.teacher_seconds > 0
    # cached teachers still count on both clocks: wall in condense_seconds, CPU in condense_cpu_seconds
    assert all(t["cached"] and t["cpu_seconds"] > 0 for t in rk.extra["teachers"])
    assert rk.condense_seconds >= rk.teacher_seconds
    assert rk.extra["condense_cpu_seconds"] >= sum(t["cpu_seconds"] for t in rk.extra["teachers"])


def test_cvdd_teachers_train_by_cvdd_squeeze_recipe(digits, cache, monkeypatch):
    """CV-DD's pool trains by its own squeeze recipe (Adam lr 1e-3, weight decay 1e-4, batch 512, cosine
    per epoch), INFER's by SGD; the recipe is in the cache key, so the two pools never mix."""
    import dataclasses

    import condense.teachers as T
    from condense.methods.cvdd import CVDDConfig

    r = TeacherRecipe.preset("cvdd")
    assert (r.optimizer, r.lr, r.weight_decay, r.batch_size, r.epochs) == ("adam", 1e-3, 1e-4, 512, 200)
    assert CVDDConfig().teacher_recipe == "cvdd" and CVDDConfig.preset("quick").teacher_recipe == "quick"
    assert T.teacher_key(digits["train"], "convnet_bn", r, 0) != T.teacher_key(digits["train"], "convnet_bn",
                                                                               TeacherRecipe(), 0)
    seen = {}
    real = T.fit

    def spy(model, batches, loss_fn, schedule, **kw):
        seen["schedule"] = schedule
        batches = list(batches)
        seen["sizes"] = {len(idx) for _, idx in batches}
        opt, _ = schedule.build(model.parameters(), 0)
        seen["opt"] = type(opt).__name__
        return real(model, iter(batches), loss_fn, schedule, **kw)

    monkeypatch.setattr(T, "fit", spy)
    train_teacher(digits["train"], "convnet_bn-w32", dataclasses.replace(r, epochs=1))
    assert seen["opt"] == "Adam" and seen["schedule"].lr == 1e-3 and seen["schedule"].weight_decay == 1e-4
    assert max(seen["sizes"]) == 512
