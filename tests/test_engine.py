"""The one training engine and the screened test curves."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from condense.budget import plan_steps
from condense.curves import CurvePolicy, stratified_subset
from condense.engine import Clock, Schedule, TrainingDiverged, fit
from condense.evaluate import evaluate, time_to_accuracy
from condense.methods import create_condenser
from condense.protocols import get_protocol

from .conftest import kill_teachers_after


@pytest.mark.parametrize("name,overrides", [("dc", {"epochs": 9}), ("kd", {"epochs": 7}), ("rs2", {"epochs": 11}),
                                            ("graph", {"epochs": 3}), ("rs2-ratio", {"epochs": 4})])
def test_schedule_is_the_protocols_learning_rate_at_every_step(name, overrides):
    """The LambdaLR the engine steps gives, at every step, the rate the protocol defines (a wrong
    epoch/step mapping, an off-by-one in DC's drop or a cosine over the wrong length fails)."""
    p = get_protocol(name, "quick", **overrides)
    plan = plan_steps(p.budget, p.passes, 3, 7, None)  # 3 steps per pass of sizes 3, 3, 1
    sched = Schedule.from_protocol(p, plan.passes, plan.steps_per_pass)
    model = torch.nn.Linear(2, 2)
    opt, lam = sched.build(model.parameters())
    seen = []
    for step in range(plan.total_steps):
        if sched.resets_at(step):
            opt, lam = sched.build(model.parameters(), step)
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        lam.step()
    want = [p.lr_at(step // 3, step, plan.total_steps) for step in range(plan.total_steps)]
    assert seen == pytest.approx(want, rel=1e-12, abs=1e-15)
    resets = [s for s in range(plan.total_steps) if sched.resets_at(s)]
    assert resets == ([3 * (p.epochs // 2 + 2)] if name == "dc" else [])


def test_divergence_is_caught_at_the_next_checkpoint_without_a_sync_per_step():
    model = torch.nn.Linear(2, 1)
    x = torch.ones(4, 2)

    def loss_fn(step):
        out = model(x).pow(2).mean()
        return out * float("nan") if step == 3 else out

    sched = Schedule(optimizer="sgd", lr=0.1, passes=1, steps_per_pass=10)
    batches = ((0, i) for i in range(10))
    with pytest.raises(TrainingDiverged, match=r"between step 0 and step 5"):
        fit(model, batches, loss_fn, sched, clock=Clock(), checkpoints=[5, 10])
    # a finite run passes through untouched and reports its steps
    model = torch.nn.Linear(2, 1)
    assert fit(model, ((0, i) for i in range(10)), lambda i: model(x).pow(2).mean(), sched, clock=Clock(),
               checkpoints=[5, 10]) == 10


def test_a_resumed_teacher_equals_an_uninterrupted_one(tmp_path, monkeypatch, digits):
    """Killing a teacher after two epochs and resuming it gives the same weights as never stopping
    (the engine resumes the optimizer, the schedule position, and the shuffling stream)."""
    import condense.teachers as teachers

    recipe = teachers.TeacherRecipe(name="tiny-4", epochs=4, batch_size=128)
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "straight"))
    straight = teachers.train_teacher(digits["train"], "convnet_bn-w32", recipe, val=digits["val"])
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "resumed"))
    restore = kill_teachers_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        teachers.train_teacher(digits["train"], "convnet_bn-w32", recipe, val=digits["val"])
    restore()
    resumed = teachers.train_teacher(digits["train"], "convnet_bn-w32", recipe, val=digits["val"])
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.val_acc == straight.val_acc


def test_stratified_subset_is_fixed_and_proportional():
    y = torch.tensor([0] * 600 + [1] * 300 + [2] * 100)
    idx = stratified_subset(y, 100)
    assert torch.equal(idx, stratified_subset(y, 100)) and idx.unique().numel() == 100
    assert torch.bincount(y[idx]).tolist() == [60, 30, 10]
    assert torch.bincount(y[stratified_subset(y, 7)], minlength=3).tolist() == [4, 2, 1]


def test_screened_curve_gives_the_exhaustive_time_to_accuracy(digits):
    """The same run evaluated both ways: screening in chunks of 60, 120 images changes neither the
    training (the same weights at every checkpoint), nor the final accuracy, nor any TTA; only
    confirmed points count as crossings, and fewer full passes are made."""
    s = create_condenser("random").condense(digits["train"], 5, seed=0)
    proto = get_protocol("dc", "quick", epochs=60, checkpoints=30)
    targets = (50.0, 70.0, 80.0, 85.0, 99.5)
    kw = dict(seeds=[0, 1], protocol=proto, targets=targets)
    full = evaluate(s, digits["test"], curve="full", **kw)
    screened = evaluate(s, digits["test"], curve=CurvePolicy(subset=60, z=3.0, min_test=0), **kw)
    assert screened.accs == full.accs
    crossed = 0
    for t in targets:
        for a, b in zip(full.runs, screened.runs):  # the crossing step (seconds differ between two runs)
            assert time_to_accuracy(b.curve, t, clock="step") == time_to_accuracy(a.curve, t, clock="step"), t
            crossed += time_to_accuracy(a.curve, t, clock="step") is not None
    assert 0 < crossed < 2 * len(targets)  # some targets reached, some not: both paths are exercised
    for a, b in zip(full.runs, screened.runs):
        by_step = {p["step"]: p["acc"] for p in a.curve}
        confirmed = [p for p in b.curve if p["on"] == "full"]
        assert all(by_step[p["step"]] == p["acc"] for p in confirmed)
        assert b.curve[-1]["on"] == "full" and b.extra["curve"]["method"] == "screened"
        assert b.extra["curve"]["full_points"] == len(confirmed) < len(a.curve)
        described = dict(a.extra["curve"])
        assert described.pop("final_pass_seconds") > 0
        assert described == {"method": "full", "full_points": 30, "test_size": 360, "batch": 256}


RECORD = Path(__file__).parent / "data" / "curve-mnist-ipc10.npz"


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("targets", [None, (85.0, 88.0, 90.0, 91.0, 92.0, 95.0)])
def test_screened_curve_gives_the_exhaustive_time_to_accuracy_on_a_recorded_run(paired, dtype, targets):
    """A real MNIST IPC 10 run (``dc`` quick, bf16 training), whose per-image test correctness was
    recorded at all 50 checkpoints in fp32 and bf16 (``benchmarks/record_curve.py``): replaying the
    screened curve over it finds every target's crossing step exactly where the exhaustive fp32 curve
    does and reports the same final accuracy, for MNIST's own targets (90, 95, 98) and for targets
    below, around and above where this run ends (85 to 95). A screen that placed a checkpoint below a
    target it had reached, or a crossing taken from a screened estimate, fails. Screening in fp32 (a
    CPU's default) and in bfloat16 (a GPU's, with its allowance), with and without the paired estimate."""
    from benchmarks.record_curve import load_record, replay

    rec = load_record(RECORD)
    n = int(rec["n"])
    targets = tuple(rec["targets"].tolist()) if targets is None else targets
    full = replay(rec, CurvePolicy(method="full"), targets)
    screened = replay(rec, CurvePolicy(paired=paired, screen_dtype=dtype), targets)
    assert [p["acc"] for p in full.points] == [100.0 * int(c.sum()) / n for c in rec["fp32"]]
    reached = 0
    for t in targets:
        want = time_to_accuracy(full.points, t, clock="step")
        assert time_to_accuracy(screened.points, t, clock="step") == want, t
        reached += want is not None
    assert 0 < reached < len(targets)
    assert screened.points[-1]["on"] == "full" and screened.points[-1]["acc"] == full.points[-1]["acc"]
    assert all(p["acc"] == f["acc"] for p, f in zip(screened.points, full.points) if p["on"] == "full")


def test_the_paired_estimate_reads_a_fraction_of_the_images():
    """On the recorded MNIST run with its own targets (90, 95, 98), the curve with the paired estimate
    costs under six full passes of the 50: four fp32 passes (three at the 90 % crossing, where accuracy
    sits within a point of the target, and the final one) and about 16,000 screened images, where
    screening each checkpoint on its own accuracy reads about 90,000 (the run plateaus 4 points under
    95 %, and late checkpoints differ from the anchor on almost no image). Its estimates stay within
    4 binomial standard errors of their screened images (at least 1 point) of the full accuracy."""
    from benchmarks.record_curve import load_record, replay

    rec = load_record(RECORD)
    n, k = int(rec["n"]), len(rec["step"])
    paired = replay(rec, CurvePolicy(), tuple(rec["targets"].tolist()))
    alone = replay(rec, CurvePolicy(paired=False), tuple(rec["targets"].tolist()))
    assert paired.full_points == alone.full_points == 4
    assert paired.screened_images < 20_000 < 60_000 < alone.screened_images
    assert (paired.full_points * n + paired.screened_images) < 0.12 * k * n
    for i, p in enumerate(paired.points):
        if p["on"] == "subset":
            truth = 100.0 * int(rec["fp32"][i].sum()) / n
            se = 100.0 * (truth / 100 * (1 - truth / 100) / p["screened"]) ** 0.5
            assert abs(p["acc"] - truth) < max(1.0, 4 * se), i


def test_a_confirming_pass_reads_only_what_screening_left():
    """On the recorded MNIST run, a confirming fp32 pass keeps the prefix an fp32 screen read and reads
    the rest: every point, every TTA and the anchors stay exactly those of reading the whole test set
    again, and the curve reads fewer images (screened + full passes - reused). A pass that kept a
    prefix of another order, or of another checkpoint, changes points or crossings; bfloat16 screens are
    never kept (the full pass is fp32)."""
    from benchmarks.record_curve import load_record, replay

    rec = load_record(RECORD)
    n = int(rec["n"])
    for targets in (tuple(rec["targets"].tolist()), (85.0, 88.0, 90.0, 91.0, 92.0, 95.0)):
        again = replay(rec, CurvePolicy(reuse=False), targets)
        kept = replay(rec, CurvePolicy(), targets)
        assert kept.points == again.points and again.reused_images == 0
        assert kept.full_points == again.full_points and kept.screened_images == again.screened_images
        assert 0 < kept.reused_images < kept.screened_images
        read = kept.screened_images + kept.full_points * n - kept.reused_images
        assert read < again.screened_images + again.full_points * n
        assert kept.describe()["reused_images"] == kept.reused_images
    bf16 = replay(rec, CurvePolicy(screen_dtype="bfloat16"), tuple(rec["targets"].tolist()))
    assert bf16.reused_images == 0


def test_a_subset_point_is_never_a_crossing():
    curve = [{"acc": 91.0, "on": "subset", "train_seconds": 1.0},
             {"acc": 90.5, "on": "full", "train_seconds": 2.0}]
    assert time_to_accuracy(curve, 90.0) == 2.0
    assert time_to_accuracy([{"acc": 91.0, "train_seconds": 1.0}], 90.0) == 1.0  # old records: all full


def test_compile_falls_back_cleanly(digits, monkeypatch):
    """Where torch.compile fails (here: at the first call, as a missing C compiler does), the run
    trains eagerly, gives exactly the eager result, and records why."""
    def broken(model, **kw):
        def fn(*a, **k):
            raise RuntimeError("Compiler: cc not found")
        return fn

    s = create_condenser("random").condense(digits["train"], 2, seed=0)
    proto = get_protocol("dc", "quick", epochs=6, checkpoints=2)
    eager = evaluate(s, digits["test"], seeds=[0], protocol=proto)
    monkeypatch.setattr(torch, "compile", broken)
    fell = evaluate(s, digits["test"], seeds=[0], protocol=proto, compile=True)
    assert fell.accs == eager.accs and eager.runs[0].extra["compile"] == "off"
    assert fell.runs[0].extra["compile"] == "fell back to eager: RuntimeError: Compiler: cc not found"

    def refuses(model, **kw):  # unavailable at construction (a platform without Inductor)
        raise RuntimeError("not supported on this platform")

    monkeypatch.setattr(torch, "compile", refuses)
    again = evaluate(s, digits["test"], seeds=[0], protocol=proto, compile=True)
    assert again.accs == eager.accs and again.runs[0].extra["compile"].startswith("fell back to eager")


def test_compiled_rows_form_their_own_table(tmp_path, monkeypatch):
    """A sweep with --compile and one without, into one folder: two tables, the compiled one says so,
    and the leaderboard (which unpacks table keys) still builds."""
    from benchmarks import leaderboard
    from benchmarks import run as runner

    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)  # fast: 'compiled' = the model itself
    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "1", "--seeds", "0", "--epochs", "2",
            "--checkpoints", "1", "--no-progress", "--out", str(tmp_path)]
    assert runner.main(argv) == 0 and runner.main([*argv, "--compile"]) == 0
    recs, failed = leaderboard.load_records([tmp_path])
    assert not failed
    assert [bool(r.get("compile")) for r in recs] == [False, True]
    assert recs[1]["run_extra"]["compile"] == "on" and recs[0]["run_extra"]["compile"] == "off"
    md = (tmp_path / "leaderboard.md").read_text()
    assert md.count("## digits · convnet · dc v1") == 2 and "compiled training (torch.compile)" in md


def test_compile_auto_compiles_where_it_pays_and_says_so(digits):
    """``compile="auto"``: not for a small run (IPC 1, 8×8) nor at IPC 10 (measured slower with its
    compilation), yes from 2·10⁸ training pixels (CIFAR-10 at IPC 50 under dc quick) and always on a
    GPU; anything but True, False or "auto" is refused."""
    from condense.engine import compile_pays

    assert not compile_pays(301 * 10, 3 * 32 * 32, "cpu")
    assert not compile_pays(301 * 100, 3 * 32 * 32, "cpu") and not compile_pays(301 * 100, 28 * 28, "cpu")
    assert compile_pays(301 * 500, 3 * 32 * 32, "cpu") and not compile_pays(301 * 500, 28 * 28, "cpu")
    assert compile_pays(10, 64, "cuda")
    s = create_condenser("random").condense(digits["train"], 1, seed=0)
    r = evaluate(s, digits["test"], seeds=[0], protocol=get_protocol("dc", epochs=2, checkpoints=1), compile="auto")
    assert r.runs[0].extra["compile"] == "off"
    with pytest.raises(ValueError, match="compile must be"):
        evaluate(s, digits["test"], seeds=[0], protocol=get_protocol("dc", epochs=2), compile="maybe")
