"""Replayable soft labels (the format's ``/replay`` part), the ``fkd`` protocol, and CV-DD end to end."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from condense import replay
from condense.evaluate import ImageTask, evaluate, fkd_loss
from condense.methods import create_condenser
from condense.protocols import get_protocol
from condense.store import FormatError, SyntheticSet, load, reseal, save

TINY = dict(teacher_recipe="tiny", iterations=4)


@pytest.fixture
def cache(fresh_cache):
    return fresh_cache


def _replay_set(epochs=3, n=12, c=4, batch=8, seed=0) -> SyntheticSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % c
    rec = replay.draw(epochs, n, 8, 8, batch, g)
    logits = torch.randn(epochs, n, c, generator=g).half()
    return SyntheticSet(kind="images", method="cvdd", ipc=n // c, num_classes=c, class_names=tuple("abcd"),
                        source_dataset="digits", source_fingerprint="f" * 32, seed=0, images=images, labels=labels,
                        mean=(0.5,), std=(0.25,), soft_labels=logits, soft_label_policy="replay", replay=rec,
                        replay_batch=batch)


def test_replay_round_trip_is_byte_for_byte_and_counts_its_bytes(tmp_path):
    s = _replay_set()
    back = load(save(s, tmp_path / "r.h5"))
    assert back.replay_batch == 8 and back.replay_epochs == 3
    assert back.soft_labels.numpy().tobytes() == s.soft_labels.numpy().tobytes()
    for k in replay.REPLAY_KEYS:
        a, b = s.replay[k].numpy(), back.replay[k].numpy()
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), k
    sizes = back.storage_bytes
    assert sizes["replay"] == sum(v.numpy().nbytes for v in s.replay.values())
    assert sizes["soft_labels"] == 3 * 12 * 4 * 2 and sizes["total"] == sum(v for k, v in sizes.items() if k != "total")


def test_dataset_of_an_epoch_yields_exactly_the_stored_views_and_logits():
    """Position p shows image order[e, p], cropped and flipped, with the partner's view pasted inside the
    batch's CutMix box; its soft label is logits[e, p]. Checked against a hand computation."""
    s = _replay_set()
    e = 1
    ds = s.dataset(epoch=e)
    assert len(ds) == 12
    x = s.float_images()
    for p in (0, 5, 9):
        img, y, soft = ds[p]
        i = int(s.replay["order"][e, p])
        top, left, h, w = s.replay["crop"][e, p].tolist()
        own = F.interpolate(x[i:i + 1, :, top:top + h, left:left + w], size=(8, 8), mode="bilinear",
                            align_corners=True)[0]
        if s.replay["flip"][e, p]:
            own = own.flip(-1)
        r1, c1, r2, c2 = s.replay["mix_box"][e, p // 8].tolist()
        outside = torch.ones(8, 8, dtype=torch.bool)
        outside[r1:r2, c1:c2] = False
        assert torch.allclose(img[:, outside], own[:, outside], atol=1e-4)
        q = int(s.replay["mix_perm"][e, p])
        assert q // 8 == p // 8  # the partner is in the same batch
        partner_view = replay.crop_flip(x[int(s.replay["order"][e, q])][None], s.replay["crop"][e, q][None],
                                        s.replay["flip"][e, q][None])[0]
        assert torch.allclose(img[:, r1:r2, c1:c2], partner_view[:, r1:r2, c1:c2], atol=1e-6)
        assert y == s.labels[i] and torch.equal(soft, s.soft_labels[e, p])
    with pytest.raises(ValueError, match="per epoch .*pass epoch=e"):
        s.dataset()
    assert len(s.dataset(hard_only=True)) == 12
    with pytest.raises(ValueError, match="replay epoch must be in \\[0, 3\\)"):
        s.dataset(epoch=3)


def test_replay_labels_of_another_set_are_refused(tmp_path):
    s, other = _replay_set(seed=0), _replay_set(seed=1)
    with pytest.raises(FormatError, match="replay labels were made for another set"):
        other.with_meta(replay=None, soft_labels=None, soft_label_policy=None).attach_replay(s)
    same = s.with_meta(replay=None, soft_labels=None, soft_label_policy=None).attach_replay(s)
    assert same.replay_epochs == 3
    path = save(s, tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:  # swap in other images: the replay part no longer matches them
        f["images"][...] = other.images.numpy()
    reseal(path)
    with pytest.raises(FormatError, match=r"r\.h5: the replay labels were made for another set"):
        load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["order"].__setitem__((0, 0), r["order"][0, 1]), "visit each image exactly once"),
    (lambda r: r["crop"].__setitem__((0, 0, 2), 9), "outside the 8×8 image"),
    (lambda r: r["mix_perm"].__setitem__((0, 0), 11), "same batch"),
    (lambda r: r["mix_lam"].__setitem__((0, 0), 2.0), r"mix_lam must lie in \[0, 1\]"),
])
def test_crafted_replay_records_get_one_line_errors(tmp_path, edit, message):
    s = _replay_set()
    rec = {k: v.clone() for k, v in s.replay.items()}
    edit(rec)
    bad = s.with_meta(replay=rec)
    with pytest.raises(FormatError, match=message):
        save(bad, tmp_path / "bad.h5")


def test_fkd_loss_is_the_chunked_kl_at_t20_over_the_accumulation_steps():
    """FKD's student loss by hand: two chunks of 8, each KL(batchmean) at T = 20 without T², / 2."""
    s = _replay_set(epochs=2, n=16, batch=16)
    p = get_protocol("fkd", "quick")
    task = ImageTask(x=s.float_images(), y=s.labels, replay=s.replay, replay_batch=16,
                     replay_logits=s.soft_labels.float(), num_classes=4)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    idx = torch.arange(16) + 16  # epoch 1
    got = fkd_loss(model, task, idx, p, torch.Generator())
    x, _, logits = s.replay_views(1)
    want = sum(F.kl_div(F.log_softmax(model(x[a:a + 8]) / 20, 1), F.softmax(logits[a:a + 8].float() / 20, 1),
                        reduction="batchmean") for a in (0, 8)) / 2
    assert torch.allclose(got, want)


def test_cvdd_end_to_end_on_digits(digits, cache, tmp_path):
    """A tiny CV-DD run: IPC-10 pairs of a five-teacher pool, replay labels for the fkd protocol's
    epochs, a file that round-trips, a deterministic replayed evaluation, and the one-line errors."""
    p = get_protocol("fkd", "quick", epochs=3, checkpoints=2)
    cond = create_condenser("cvdd", "quick", **TINY).for_protocol(p)
    assert cond.config.replay_epochs == 3 and cond.config.replay_batch == 16
    s = cond.condense(digits["train"], 10, seed=0)
    assert s.extra["committees"] == [[a, b] for a in range(5) for b in range(a + 1, 5)]
    assert s.extra["prior_mode"]["mode"] == "val"
    assert s.extra["priors"] == pytest.approx([t["val_acc"] for t in s.extra["teachers"]], abs=1e-3)
    assert s.soft_labels.shape == (3, 100, 10) and s.soft_labels.dtype == torch.float16
    assert s.images.dtype == torch.uint8 and sorted(s.labels.tolist()) == sorted(list(range(10)) * 10)
    assert s.storage_bytes["soft_labels"] + s.storage_bytes["replay"] > s.storage_bytes["images"]
    path = save(s, tmp_path / "cvdd.h5")
    a = evaluate(path, digits["test"], protocol=p, seeds=[0], targets=())
    b = evaluate(path, digits["test"], protocol=p, seeds=[0], targets=())
    assert a.runs[0].steps == 3 * 7 and a.runs[0].final_acc == b.runs[0].final_acc
    assert [q["acc"] for q in a.runs[0].curve] == [q["acc"] for q in b.runs[0].curve]
    with pytest.raises(ValueError, match="stores 3 replay epochs of soft labels but protocol 'fkd' trains 4"):
        evaluate(path, digits["test"], protocol=p.replace(epochs=4), seeds=[0])
    with pytest.raises(ValueError, match="per-epoch replay labels: evaluate it under the fkd protocol"):
        evaluate(path, digits["test"], protocol="kd", seeds=[0])
    static = create_condenser("cvdd", "quick", soft_labels="static", **TINY).condense(digits["train"], 10, seed=0)
    assert static.soft_label_policy == "static" and static.soft_labels.shape == (100, 10)
    assert torch.equal(static.images, s.images)  # the same recovery; only the labels differ
    # the official images are quality-75 JPEGs, relabelled as decoded: the same recovery stored lossless
    # differs by exactly PIL's round-trip, and so do the labels the committee gives it
    from condense.methods._common import jpeg_roundtrip
    lossless = create_condenser("cvdd", "quick", image_io="lossless", **TINY).for_protocol(p).condense(
        digits["train"], 10, seed=0)
    assert s.extra["image_io"] == "jpeg (quality 75)" and lossless.extra["image_io"] == "lossless"
    assert torch.equal(jpeg_roundtrip(lossless.images), s.images) and not torch.equal(lossless.images, s.images)
    assert not torch.equal(lossless.soft_labels, s.soft_labels)
    assert s.extra["ipc1_committee"] == "two best priors"  # digits has no hand-picked pair
    assert static.storage_bytes["soft_labels"] * 3 == s.storage_bytes["soft_labels"] == 3 * 100 * 10 * 2
    assert "replay" not in static.storage_bytes
    assert evaluate(static, digits["test"], protocol=p, seeds=[0], targets=()).runs[0].steps == 21
    one = create_condenser("sre2l++", "quick", **TINY).for_protocol(p).condense(digits["train"], 10, seed=0)
    assert one.extra["committees"] == [[0]] * 10 and one.extra["relabel_teachers"] == ["convnet_bn"]
    with pytest.raises(ValueError, match="pool of 4 teachers has 6 pairs"):
        create_condenser("cvdd", "quick", teachers=("convnet_bn",) * 2 + ("convnet_bn-w32", "convnet_bn-d2"),
                         **TINY).condense(digits["train"], 10, seed=0)
    with pytest.raises(ValueError, match="a committee of 2 needs a pool of at least 2"):
        create_condenser("cvdd", "quick", teachers=("convnet_bn",), **TINY).condense(digits["train"], 1, seed=0)


def test_student_priors_are_computed_once_and_cached(digits, cache, monkeypatch):
    """prior="student": one single-teacher set and one fkd student per teacher, scored on val, cached."""
    import condense.evaluate as ev

    calls = []
    real = ev.val_accuracy

    def counting(synset, val, protocol, **kw):
        calls.append((list(synset.method_config["teachers"]), val.split, protocol.epochs))
        return real(synset, val, protocol, **kw)

    monkeypatch.setattr(ev, "val_accuracy", counting)
    kw = dict(TINY, teachers=("convnet_bn-w32", "convnet_bn-d2"), prior="student", prior_ipc=1, prior_epochs=2)
    s = create_condenser("cvdd", "quick", **kw).condense(digits["train"], 1, seed=0)
    assert calls == [(["convnet_bn-w32"], "val", 2), (["convnet_bn-d2"], "val", 2)]
    assert s.extra["prior_mode"]["mode"] == "student" and not s.extra["prior_mode"]["cached"]
    assert all(0 <= v <= 100 for v in s.extra["priors"])
    again = create_condenser("cvdd", "quick", **kw).condense(digits["train"], 1, seed=0)
    assert len(calls) == 2 and again.extra["prior_mode"]["cached"] and again.extra["priors"] == s.extra["priors"]
    explicit = create_condenser("cvdd", "quick", **{**kw, "prior": "explicit", "priors": (60.0, 70.0)})
    assert explicit.condense(digits["train"], 1, seed=0).extra["priors"] == [60.0, 70.0]
    with pytest.raises(ValueError, match="one prior per teacher"):
        create_condenser("cvdd", "quick", **{**kw, "prior": "explicit", "priors": (60.0,)})


def test_weight_decay_on_matrices_only():
    from condense.engine import Schedule

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.GroupNorm(1, 2), torch.nn.Flatten(),
                                torch.nn.Linear(2, 3))
    opt, _ = Schedule("adamw", 1e-3, weight_decay=0.01, decay="matrices").build(model.parameters())
    decayed = {id(q) for g in opt.param_groups if g["weight_decay"] > 0 for q in g["params"]}
    assert decayed == {id(model[0].weight), id(model[3].weight)}
    assert np.isclose(get_protocol("fkd").to_dict()["weight_decay"], 0.01)
    assert "decay" not in get_protocol("kd").to_dict()  # defaults keep older records' keys


@pytest.mark.parametrize("key, value, message", [
    ("mix_perm", 11, "same batch"),
    ("order", 0, "visit each image exactly once"),
    ("crop", 30, "outside the 8×8 image"),
])
def test_a_crafted_replay_file_is_refused_in_one_line(tmp_path, key, value, message):
    """The reader applies the replay rules to what it reads: an edited (and resealed) file fails to
    load with one line naming the file and the problem."""
    path = save(_replay_set(), tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        a = f[f"replay/{key}"][()]
        a.flat[0] = value
        f[f"replay/{key}"][...] = a
    reseal(path)
    with pytest.raises(FormatError, match=rf"r\.h5: .*{message}") as e:
        load(path)
    assert "\n" not in str(e.value)


def test_fkd_tables_hold_random_and_every_soft_label_condenser():
    from condense.methods import create_condenser, default_condensers

    fkd = default_condensers("images", get_protocol("fkd"))
    assert fkd[0] == "random" and {"cvdd", "sre2l++", "infer", "random-kd"} <= set(fkd)
    dc = default_condensers("images", get_protocol("dc"))
    assert "cvdd" in dc and "sre2l++" not in dc  # the ablation runs where asked, and in soft-label tables
    c = create_condenser("cvdd", "quick")
    assert c.for_protocol(get_protocol("fkd", epochs=7)).config.replay_epochs == 7
    assert c.for_protocol(get_protocol("kd")).config.soft_labels == "static"
    assert c.for_protocol(get_protocol("dc")).config == c.config  # the HLR row is the fkd row's set


def test_fkd_batch_follows_the_official_scripts_per_dataset_and_ipc():
    """CV-DD's scripts train CIFAR-10 and ImageNette at IPC 1 with -b 10 (two chunks of 5), 16 elsewhere;
    the sweep gives each cell its batch unless --batch-size says otherwise, and the loss chunks by it."""
    from benchmarks.sweep.plan import Planner
    from benchmarks.sweep.spec import SweepSpec
    from condense.protocols import for_cell

    fkd = get_protocol("fkd", "quick")
    assert for_cell(fkd, "cifar10", 1).batch_size == 10 and for_cell(fkd, "imagenette", 1).batch_size == 10
    assert for_cell(fkd, "cifar10", 10).batch_size == 16 and for_cell(fkd, "cifar100", 1).batch_size == 16
    assert for_cell(get_protocol("dc", "quick"), "cifar10", 1) == get_protocol("dc", "quick")
    cells = Planner(SweepSpec(datasets=("cifar10",), protocol="fkd", seeds=(0,))).cells(
        "cifar10", "images", fkd, ["random"], [1, 10])
    assert {c.ipc: c.protocol.batch_size for c in cells} == {1: 10, 10: 16}
    fixed = Planner(SweepSpec(datasets=("cifar10",), protocol="fkd", seeds=(0,), batch_size=16)).cells(
        "cifar10", "images", fkd, ["random"], [1])
    assert fixed[0].protocol.batch_size == 16
    # the loss: two chunks of 5 at batch 10
    p = for_cell(fkd, "cifar10", 1)
    g = torch.Generator().manual_seed(0)
    x, logits = torch.randn(10, 1, 8, 8, generator=g), torch.randn(10, 3, generator=g)
    task = ImageTask(x=x, y=logits.argmax(1), soft=logits, num_classes=3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    torch.manual_seed(0)
    fkd_loss(model, task, torch.arange(10), p, torch.Generator().manual_seed(1))
    assert seen == [5, 5]


def test_cvdd_recovers_in_the_scripts_class_batches_with_their_jitter(digits, monkeypatch):
    """recover.py rolls by 4 on the CIFARs and Tiny-ImageNet (side/8 would be 8 there) and recovers 100
    classes at a time on Tiny-ImageNet, CIFAR-100 and ImageNet-1k, each chunk against its IPC index's
    committee; class_batch and jitter set either by name."""
    import dataclasses
    from types import SimpleNamespace

    import condense.methods.cvdd as cv

    seen = {}

    def fake(models, committees, weights, x0, y, **kw):
        seen.update(committees=list(committees), rows=x0.shape[0], jitter=kw["jitter"])
        return x0

    monkeypatch.setattr(cv, "synthesize", fake)
    train = digits["train"]
    pool = [SimpleNamespace(model=None)] * 5
    coms = cv.committee_schedule((0.0,) * 5, 2, 2, 0)

    def recover(data, **kw):
        return create_condenser("cvdd", "quick", **TINY, **kw).recover(data, pool, (0.0,) * 5, coms, 2, 0, "cpu", False)

    recover(train)
    assert seen["jitter"] == 1 and len(seen["committees"]) == 2 and seen["rows"] == 20   # 8×8 digits: side/8
    recover(dataclasses.replace(train, name="tinyimagenet"), class_batch=5)
    assert seen["jitter"] == 4 and seen["rows"] == 20
    assert seen["committees"] == [coms[0], coms[0], coms[1], coms[1]]  # two chunks of 5 classes per IPC index
    recover(dataclasses.replace(train, name="cifar10"), jitter=2)
    assert seen["jitter"] == 2
    with pytest.raises(ValueError, match="class_batch: 3 classes per synthesis batch must divide the 10 classes"):
        recover(train, class_batch=3)
    assert cv.OFFICIAL_CLASS_BATCH["tinyimagenet"] == 100 and cv.OFFICIAL_JITTER["tinyimagenet"] == 4


def test_cvdd_paper_aggregation_is_the_best_full_test_checkpoint_labelled_as_selected_on_test():
    """train_fkd.py reports each run's best test accuracy (a test-set selection): shown apart for fkd rows,
    from full-test checkpoints only, never replacing the final accuracy."""
    from benchmarks.report.render import test_selected_table
    from benchmarks.report.tables import test_selected

    def rec(accs, final, on=("full", "full", "full")):
        return {"protocol": {"name": "fkd"}, "acc": final,
                "curve": [{"acc": a, "on": o, "epoch": 10 * (i + 1) - 1} for i, (a, o) in enumerate(zip(accs, on))]}

    runs = [rec([40.0, 50.0, 45.0], 45.0), rec([42.0, 41.0, 48.0], 48.0, on=("full", "screen", "full"))]
    runs[1]["curve"][1]["acc"] = 99.0  # a screened estimate never counts
    t = test_selected(runs)
    assert t == {"mean": 49.0, "std": 1.0, "points": 3, "every_epochs": 10}
    assert test_selected([{**runs[0], "protocol": {"name": "dc"}}]) is None
    row = {"ipc": 10, "method_label": "cvdd", "mean": 46.5, "std": 1.5, "test_selected": t}
    lines = test_selected_table([row])
    assert "Selected on the test set" in lines[0] and "every 10 epochs" in lines[0]
    assert lines[-2] == "| 10 | cvdd | 46.50 ± 1.50 | 49.00 ± 1.00 | 3 |"
