"""The shared evaluator: TTA arithmetic, checkpoints, the DC schedule, determinism, no test selection."""
from __future__ import annotations

import pytest
import torch

from condense.evaluate import EvalResult, SeedRun, checkpoint_steps, evaluate, time_to_accuracy
from condense.methods import create_condenser
from condense.protocols import get_protocol

CURVE = [{"step": 10, "train_seconds": 1.0, "acc": 40.0}, {"step": 20, "train_seconds": 2.5, "acc": 61.0},
         {"step": 30, "train_seconds": 4.0, "acc": 58.0}, {"step": 40, "train_seconds": 6.0, "acc": 75.0}]


def test_tta_on_a_hand_made_curve():
    assert time_to_accuracy(CURVE, 40.0) == 1.0
    assert time_to_accuracy(CURVE, 60.0) == 2.5  # the first crossing, not a later one
    assert time_to_accuracy(CURVE, 60.0, offset=10.0) == 12.5  # condense seconds are added
    assert time_to_accuracy(CURVE, 75.0) == 6.0
    assert time_to_accuracy(CURVE, 75.1) is None  # not reached, never a number


def test_tta_summary_over_seeds():
    runs = [SeedRun(seed=s, final_acc=c[-1]["acc"], curve=c, train_seconds=6.0, eval_seconds=0.0, steps=40)
            for s, c in enumerate([CURVE, CURVE[:2]])]
    res = EvalResult(arch="convnet", protocol={"name": "dc", "preset": "quick"}, runs=runs, targets=(60.0, 70.0),
                     condense_seconds=2.0)
    s = res.tta_summary()
    assert s["60"]["per_seed"] == [4.5, 4.5] and s["60"]["mean"] == 4.5 and s["60"]["reached"] == 2
    assert s["70"]["per_seed"] == [8.0, None] and s["70"]["mean"] is None and s["70"]["reached"] == 1
    assert s["70"]["train_only"] == [6.0, None]
    assert res.mean == pytest.approx((75.0 + 61.0) / 2) and res.std == pytest.approx(7.0)


def test_cpu_clock_tta_adds_the_condenser_cpu_time():
    curve = [{"train_seconds": 3.0, "cpu_seconds": 2.0, "acc": 65.0}]
    run = SeedRun(seed=0, final_acc=65.0, curve=curve, train_seconds=3.0, eval_seconds=0.0, steps=1)
    res = EvalResult(arch="convnet", protocol={"name": "dc", "preset": "quick"}, runs=[run], targets=(60.0,),
                     condense_seconds=50.0, condense_cpu_seconds=8.0)
    assert res.tta(60.0) == [53.0] and res.tta(60.0, clock="cpu_seconds") == [10.0]
    assert res.tta_summary()["60"]["cpu"] == [10.0]


def test_checkpoints_every_two_percent():
    steps = checkpoint_steps(301, 50)
    assert len(steps) == 50 and steps[-1] == 301 and steps[0] == 7
    assert checkpoint_steps(10, 50) == list(range(1, 11))  # never more checkpoints than steps


def test_dc_lr_drops_at_half_plus_one():
    p = get_protocol("dc", "quick")
    assert p.epochs == 300 and p.augment is None and p.passes == 301
    assert p.lr_at(151) == 0.01 and p.lr_at(152) == pytest.approx(0.001)
    assert not p.resets_optimizer(151) and p.resets_optimizer(152)
    paper = get_protocol("dc", "paper")
    assert paper.epochs == 1000 and paper.augment == "dsa" and paper.lr_at(501) == 0.01 and paper.lr_at(502) < 0.01


def test_dc_schedule_in_a_real_run(digits, monkeypatch):
    """Record the lr of every optimizer step: E=6 means passes 0..6, lr x0.1 from pass 5 (after 6//2+1=4)."""
    import condense.engine as engine

    seen = []
    real = engine.update

    def spy(opt, sched, loss):
        seen.append(opt.param_groups[0]["lr"])
        real(opt, sched, loss)

    monkeypatch.setattr(engine, "update", spy)
    s = create_condenser("random").condense(digits["train"], 3, seed=0)  # 30 images: one step per pass
    evaluate(s, digits["test"], seeds=[0], protocol=get_protocol("dc", "quick", epochs=6))
    assert seen == [0.01] * 5 + [pytest.approx(0.001)] * 2


def test_deterministic_on_cpu_and_seed_sensitive(digits):
    s = create_condenser("random").condense(digits["train"], 5, seed=1)
    proto = get_protocol("dc", "paper", epochs=8)  # with DSA augmentation
    a = evaluate(s, digits["test"], seeds=[3], protocol=proto)
    b = evaluate(s, digits["test"], seeds=[3], protocol=proto)
    c = evaluate(s, digits["test"], seeds=[4], protocol=proto)
    assert a.accs == b.accs and [p["acc"] for p in a.runs[0].curve] == [p["acc"] for p in b.runs[0].curve]
    assert a.runs[0].curve != c.runs[0].curve


def test_final_accuracy_is_the_last_checkpoint_not_the_best(digits):
    s = create_condenser("random").condense(digits["train"], 10, seed=0)
    r = evaluate(s, digits["test"], seeds=[0], protocol=get_protocol("dc", "quick", epochs=30, checkpoints=31))
    run = r.runs[0]
    assert run.final_acc == run.curve[-1]["acc"] and run.curve[-1]["step"] == run.steps
    assert len(run.curve) == 31 and all(c["train_seconds"] <= run.train_seconds for c in run.curve)
    assert r.mean > 40  # 30 short passes over 10 digits per class: far above the 10 % of chance


def test_set_from_another_dataset_is_refused(digits, data_root):
    from condense.data import load_dataset

    from .conftest import need

    need(data_root, "MNIST", "raw")
    s = create_condenser("random").condense(digits["train"], 1, seed=0)
    with pytest.raises(ValueError, match="condensed from 'digits'"):
        evaluate(s, load_dataset("mnist", "test"), seeds=[0])


def test_herding_picks_the_mean_matching_examples():
    from condense.methods.herding import herding_select

    feats = torch.tensor([[0.0, 0.0], [10.0, 0.0], [1.0, 1.0], [-1.0, -1.0], [0.1, 0.0]])
    order = herding_select(feats, 3)
    assert order[0] == 2 or order[0] == 4  # closest to the mean (2.0, 0.0)
    assert len(set(order.tolist())) == 3
    mu = feats.mean(0)
    for k in range(1, 4):  # each greedy step minimises the running-mean error
        chosen = order[:k]
        err = torch.linalg.vector_norm(feats[chosen].mean(0) - mu)
        for other in set(range(5)) - set(order[:k - 1].tolist()):
            alt = torch.cat([order[:k - 1], torch.tensor([other])])
            assert err <= torch.linalg.vector_norm(feats[alt].mean(0) - mu) + 1e-6


def _brute_herding(feats, k, pick):
    """Herding by its definition, one candidate at a time in float64: at step t the candidate whose
    addition gives ‖(t+1)·μ − (Σ chosen + φ(x))‖ its min (iCaRL) or max (DeepCore)."""
    f = feats.double().tolist()
    d = len(f[0])
    mu = [sum(row[j] for row in f) / len(f) for j in range(d)]
    chosen: list[int] = []
    for t in range(k):
        s = [sum(f[i][j] for i in chosen) for j in range(d)]
        dist = {x: sum(((t + 1) * mu[j] - s[j] - f[x][j]) ** 2 for j in range(d)) ** 0.5
                for x in range(len(f)) if x not in chosen}
        chosen.append(pick(dist, key=dist.get))
    return chosen


@pytest.mark.parametrize("rule,pick", [("icarl", min), ("deepcore", max)])
def test_both_herding_rules_match_a_brute_force_reference(rule, pick):
    from condense.methods.herding import herding_select

    feats = torch.randn(40, 6, generator=torch.Generator().manual_seed(3))
    assert herding_select(feats, 12, rule).tolist() == _brute_herding(feats, 12, pick)


def test_the_two_herding_rules_are_two_methods(digits):
    from condense.methods import create_condenser, default_condensers

    a = create_condenser("herding").condense(digits["train"], 5, seed=0)
    b = create_condenser("herding-deepcore").condense(digits["train"], 5, seed=0)
    assert a.extra["source_indices"] != b.extra["source_indices"]
    assert "herding" in default_condensers("images", get_protocol("dc"))
    assert "herding-deepcore" not in default_condensers("images", get_protocol("dc"))
    with pytest.raises(ValueError, match="unknown herding rule"):
        from condense.methods.herding import herding_select
        herding_select(torch.zeros(3, 2), 1, "welling")


def test_reference_run_stops_at_the_highest_target(digits):
    s = create_condenser("random").condense(digits["train"], 10, seed=0)
    proto = get_protocol("dc", "quick", epochs=60, checkpoints=30)
    r = evaluate(s, digits["test"], seeds=[0], protocol=proto, targets=(50.0, 70.0), stop_at_targets=True)
    run = r.runs[0]
    assert run.extra["stopped_early"] and run.steps < run.extra["planned_steps"] == 61
    assert run.final_acc >= 70.0 and run.curve[-1]["acc"] >= 70.0
    assert all(c["acc"] < 70.0 for c in run.curve[:-1])  # it stopped at the first crossing
    assert r.tta_summary()["70"]["reached"] == 1


def test_kd_loss_is_kl_from_the_teacher_without_a_t_squared_factor():
    """KL(softmax(s/T) ‖ softmax(f(x)/T)), averaged over the batch (INFER's loss): the teacher's
    distribution comes first, and nothing multiplies it by T²."""
    from condense.evaluate import kd_loss

    g = torch.Generator().manual_seed(0)
    logits, soft = torch.randn(6, 10, generator=g) * 3, torch.randn(6, 10, generator=g) * 3
    p = get_protocol("kd", mixup_alpha=0.0, temperature=4.0)
    got = float(kd_loss(lambda x: logits, torch.zeros(6, 1), soft, p, g))
    q, log_q = torch.softmax(soft / 4, 1), torch.log_softmax(soft / 4, 1)
    log_p = torch.log_softmax(logits / 4, 1)
    want = float((q * (log_q - log_p)).sum(1).mean())
    reverse = float((log_p.exp() * (log_p - log_q)).sum(1).mean())
    assert got == pytest.approx(want, rel=1e-5)
    assert abs(got - reverse) > 1e-3 and abs(got - 16 * want) > 1e-3


def test_a_run_whose_last_point_is_below_its_best_reports_the_last(digits, monkeypatch):
    """The reported accuracy is the last checkpoint's, never the best one (no selection on test)."""
    import condense.curves as curves

    n = len(digits["test"])
    accs = iter([90.0, 95.0, 60.0])
    monkeypatch.setattr(curves.Curve, "full_correct",
                        lambda self, model: torch.arange(n) < round(next(accs) * n / 100))
    s = create_condenser("random").condense(digits["train"], 1, seed=0)
    r = evaluate(s, digits["test"], seeds=[0], protocol=get_protocol("dc", epochs=2, checkpoints=3), curve="full")
    assert [p["acc"] for p in r.runs[0].curve] == [90.0, 95.0, 60.0]
    assert r.runs[0].final_acc == r.accs[0] == 60.0


def test_roc_auc_averages_ties_and_needs_both_classes():
    import torch

    from condense.graph_eval import roc_auc

    # pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>both, 0.4>0.1, 0.4=0.4 (half) -> 4.5 / 6
    assert roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4]), torch.tensor([0, 0, 1, 1, 1])) == 0.75
    assert roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])) is None


def test_graph_v5_selects_the_checkpoint_on_validation_roc_auc_on_two_class_tasks():
    """On MUTAG, validation accuracy sits at the majority rate for much of a run, and its tie rule took the
    last checkpoint; v5 picks the best validation ROC-AUC (ties to the later checkpoint), never test."""
    from condense.data import load_dataset
    from condense.evaluate import evaluate
    from condense.graph_eval import selection_key
    from condense.methods import create_condenser
    from condense.protocols import get_protocol

    p = get_protocol("graph", "quick")
    assert (p.version, p.select, p.to_dict()["select"]) == (5, "val-auc", "val-auc")
    assert selection_key([{"val_auc": 0.5}, {"val_auc": None}], p) == "val_acc"   # one class missing somewhere
    assert selection_key([{"val_auc": 0.5}], p.replace(select="val-acc")) == "val_acc"
    train, test = load_dataset("MUTAG", "train"), load_dataset("MUTAG", "test")
    s = create_condenser("random").condense(train, 5, seed=0)
    res = evaluate(s, test, arch="gcn", protocol="graph", seeds=[0, 1], preset="quick")
    for run in res.runs:
        curve, x = run.curve, run.extra
        best = max(c["val_auc"] for c in curve)
        chosen = [c for c in curve if c["step"] == x["selected_step"]][0]
        assert x["selected_on"] == "val_auc" and chosen["val_auc"] == best == x["val_auc"]
        assert all(c["val_auc"] < best for c in curve if c["step"] > chosen["step"])   # ties go later
        assert run.final_acc == chosen["acc"] and x["roc_auc"] == chosen["auc"]


def test_weight_decay_is_checked_for_range_not_capped_at_one():
    from condense.protocols import get_protocol

    p = get_protocol("graph", "quick")
    assert p.replace(weight_decay=100.0).weight_decay == 100.0    # the official Mirage scripts' value
    with pytest.raises(ValueError, match="weight_decay"):
        p.replace(weight_decay=1e5)
    with pytest.raises(ValueError, match="weight_decay"):
        p.replace(weight_decay=-1.0)
