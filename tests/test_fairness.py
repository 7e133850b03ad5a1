"""Fair comparison: equal step budgets, set and training seeds, exact grouping, code identity, one clock
rule, comparable time-to-accuracy and DD-Ranking scores. Each test names the bug it would catch."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from condense import jsonl
from benchmarks import run as runner
from benchmarks.leaderboard import DuplicateRecords, aggregate, build, load_records
from benchmarks.report.scores import ars, lrs, normalised
from condense.budget import BatchStream, plan_steps
from condense.evaluate import evaluate
from condense.methods import create_condenser
from condense.protocols import get_protocol

from .conftest import kill_teachers_after

# ----------------------------------------------------------------------------- the step budget


def test_plan_is_the_plain_sets_steps_whatever_the_set_size():
    """A bigger set (INFER's composed instances) must not train more steps than the plain IPC×C set."""
    plain = plan_steps("steps", 301, 256, 100, 100)
    big = plan_steps("steps", 301, 256, 350, 100)
    assert plain.total_steps == big.total_steps == 301 and plain.samples == big.samples == 30_100
    assert plan_steps("steps", 301, 256, 500, 500).pass_batches == (256, 244)
    assert plan_steps("epochs", 301, 256, 350, 100).total_steps == 602  # the paper's own epoch rule: 2 per pass
    assert plan_steps("steps", 300, None, 100, 100).pass_batches == (100,)  # one step on the whole round


def test_batch_stream_sees_every_item_once_per_pass_across_batch_boundaries():
    s = BatchStream(7, torch.Generator().manual_seed(0))
    drawn = torch.cat([s.take(3) for _ in range(7)])  # 21 items = 3 shuffles, batches straddling them
    for i in range(3):
        assert sorted(drawn[7 * i:7 * (i + 1)].tolist()) == list(range(7))


def test_plain_set_trains_exactly_as_under_the_epoch_rule(digits):
    """On the plain set both budgets are the same training, bit for bit (the stream is the per-pass
    shuffle). Batches of 8 of the 30 images (8, 8, 8, 6: four steps a pass), so the order and the
    sizes of a pass's batches matter: a step budget that put the short batch first, or trained full
    batches across pass boundaries, trains other weights."""
    s = create_condenser("random").condense(digits["train"], 3, seed=0)
    p = get_protocol("dc", "quick", epochs=6, checkpoints=3, batch_size=8, lr=0.05)
    a = evaluate(s, digits["test"], seeds=[5], protocol=p)
    b = evaluate(s, digits["test"], seeds=[5], protocol=p.replace(budget="epochs"))
    assert a.runs[0].steps == b.runs[0].steps == 28
    assert a.plan["pass_batches"] == b.plan["pass_batches"] == [8, 8, 8, 6]
    assert [c["acc"] for c in a.runs[0].curve] == [c["acc"] for c in b.runs[0].curve]
    assert len({c["acc"] for c in a.runs[0].curve}) > 1  # it learns: the checkpoints differ


def test_full_trains_the_steps_of_the_table_ipc(digits):
    full = create_condenser("full").condense(digits["train"], 10, seed=0)
    p = get_protocol("dc", "quick", epochs=4, checkpoints=1)
    res = evaluate(full, digits["test"], seeds=[0], protocol=p, budget_ipc=10)
    assert res.plan["steps"] == 5 and res.plan["samples"] == 500 and res.plan["set_size"] == len(digits["train"])


# ----------------------------------------------------------------------------- seeds


def test_training_seeds_come_from_their_own_stream():
    seeds = {runner.train_seed(s, k) for s in range(50) for k in range(4)}
    assert len(seeds) == 200 and min(seeds) >= 1 << 62  # never a set seed (those stay below 2^62)


def _args(tmp_path, *extra):
    return runner.parse_args(["--datasets", "digits", "--out", str(tmp_path / "out"), "--no-progress",
                              "--epochs", "2", "--checkpoints", "1", *extra])


def test_deterministic_condenser_is_one_set_trained_k_times(tmp_path):
    sw = runner.Sweep.__new__(runner.Sweep)
    sw.args = _args(tmp_path, "--seeds", "0", "1", "2", "--train-seeds", "2")
    p = get_protocol("dc", "quick", epochs=2)
    cells = sw.cells("digits", "images", p, ["full", "random"], [10])
    full = [c for c in cells if c.method == "full"]
    rand = [c for c in cells if c.method == "random"]
    assert {c.seed for c in full} == {0} and len({c.train_seed for c in full}) == 6  # 1 set × 6 trainings
    assert {c.seed for c in rand} == {0, 1, 2} and len(rand) == 6                  # 3 sets × 2 trainings
    assert all(c.train_seed != c.seed for c in cells)


# ----------------------------------------------------------------------------- grouping, duplicates, identity


def _rec(method="random", ipc=10, seed=0, acc=50.0, key=None, train_seed=None, **protocol):
    p = {"name": "dc", "version": 1, "preset": "quick", "epochs": 300, "augment": None, "batch_size": 256,
         "checkpoints": 5, "budget": "steps", "loss": "ce", "mixup_alpha": 0.0, **protocol}
    return {"key": key or f"{method}-{ipc}-{seed}-{json.dumps(protocol, sort_keys=True)}", "status": "ok",
            "dataset": "toy", "method": method, "ipc": ipc, "seed": seed,
            "train_seed": seed + (1 << 62) if train_seed is None else train_seed, "arch": "convnet", "protocol": p,
            "method_config": {}, "acc": acc, "targets": [60.0], "condense_seconds": 1.0, "teacher_seconds": 0.0,
            "train_seconds": 10.0, "storage_bytes": {"total": 1000}, "touches_full_data": method == "full",
            "source": "toy", "curve": [{"train_seconds": 5.0, "acc": acc}], "code": {"condenser": "c", "evaluator": "e"},
            "created_utc": "2026-11-29T00:00:00Z", "plan": {"steps": 301, "checkpoint_every": 60.2}}


def test_records_differing_only_in_batch_size_are_separate_tables():
    tables = aggregate([_rec(seed=0, acc=50.0), _rec(seed=1, acc=60.0), _rec(seed=0, acc=90.0, batch_size=128)])
    assert len(tables) == 2
    means = sorted(t["rows"][0]["mean"] for t in tables.values())
    assert means == [55.0, 90.0]  # never averaged into 66.7
    assert any("batch_size=128" in t["heading"] for t in tables.values())


def _measured(rec, device=None, source=None, curve=None, tf32=None):
    """A record as measured on ``device`` (kind), ``source`` (fingerprint) with ``curve`` and ``tf32``."""
    rec = dict(rec)
    if device is not None:
        rec["device_kind"] = device
    if source is not None:
        rec["source_fingerprint"] = source
    if curve is not None:
        rec["curve_method"] = curve
    if tf32 is not None:
        rec["run_extra"] = {**(rec.get("run_extra") or {}), "tf32": tf32}
    return rec


def test_tables_never_mix_devices_sources_curves_or_tf32():
    """One cell measured on a CPU (train 100 s) and on a GPU (2 s) is two tables, never one row of
    51 s; the original CIFAR-10 and its JPEG copy (two source fingerprints), screened and exhaustive
    curves, and TF32 on and off are separate tables too. Each heading says what sets it apart from
    its neighbours, and older records without these fields still read, grouped by what they carry."""
    cpu = _measured({**_rec(key="c", acc=50.0), "train_seconds": 100.0}, "cpu", "f-jpeg", "screened", False)
    gpu = _measured({**_rec(key="g", acc=52.0), "train_seconds": 2.0}, "cuda (NVIDIA H100)", "f-jpeg", "screened", False)
    tables = aggregate([cpu, gpu])
    assert sorted(t["rows"][0]["train_seconds"] for t in tables.values()) == [2.0, 100.0]
    assert sorted(t["heading"].split(" · ")[-1] for t in tables.values()) == [
        "measured on cpu", "measured on cuda (NVIDIA H100)"]
    original = _measured({**cpu, "key": "o", "source": "torchvision CIFAR10 pickle"}, source="f-orig")
    jpeg = {**cpu, "source": "ImageFolder JPEG copy"}
    tables = aggregate([original, jpeg])
    assert len(tables) == 2 and all("source f-" in t["heading"] for t in tables.values())
    assert any("JPEG copy" in t["heading"] for t in tables.values())
    full = _measured({**cpu, "key": "f", "acc": 70.0}, curve="full")
    tables = aggregate([cpu, full])
    assert sorted(t["rows"][0]["mean"] for t in tables.values()) == [50.0, 70.0]
    assert {t["heading"].split(" · ")[-1] for t in tables.values()} == {"screened curve", "exhaustive curve"}
    tf32 = _measured({**gpu, "key": "t"}, tf32=True)
    assert len(aggregate([gpu, tf32])) == 2
    old = {k: v for k, v in _rec(key="old", acc=40.0).items()}
    old["machine"] = {"device": "cuda:0", "gpu": "NVIDIA A100"}
    tables = aggregate([old, gpu])
    assert len(tables) == 2 and any("cuda (NVIDIA A100)" in t["heading"] for t in tables.values())
    (t,) = aggregate([_rec(key="bare")]).values()  # nothing recorded: one group of its own, still read
    assert t["rows"][0]["mean"] == 50.0


def test_the_resume_key_separates_devices_and_curve_methods(tmp_path, monkeypatch):
    """A sweep on a GPU into a folder of CPU results runs its cells (their keys differ), and so does a
    sweep with the exhaustive curve; the same sweep again skips them."""
    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "1", "--seeds", "0", "--epochs", "1",
            "--checkpoints", "1", "--no-progress", "--out", str(tmp_path / "out"), "--device", "cpu"]
    assert runner.main(argv) == 0
    res = tmp_path / "out" / "results.jsonl"
    (first,) = [json.loads(line) for line in res.read_text().splitlines()]
    assert first["device_kind"] == "cpu" and first["curve_method"] == "screened"
    assert first["run_extra"]["tf32"] is False
    from condense.identity import code_identity
    from condense.methods import condenser_module
    from condense.methods import create_condenser as cc

    cell = runner.Cell(dataset="digits", method="random", ipc=1, set_ipc=1, seed=0, train_seed=first["train_seed"],
                       protocol=get_protocol("dc", "quick", epochs=1, checkpoints=1))
    train = type("T", (), {"fingerprint": first["source_fingerprint"]})()
    keys = []
    for kind in ("cpu", "cuda (NVIDIA H100)"):
        sweep = runner.Sweep.__new__(runner.Sweep)
        sweep.args = runner.parse_args(argv)
        sweep.machine = {**runner.machine(torch.device("cpu")), "device_kind": kind}
        keys.append(sweep.record_key(cell, train, cc("random"), "convnet", code_identity(condenser_module("random"))))
    assert keys[0] != keys[1]
    assert runner.main([*argv, "--curve", "full"]) == 0
    lines = [json.loads(line) for line in res.read_text().splitlines()]
    assert len(lines) == 2 and lines[1]["curve_method"] == "full" and lines[1]["key"] != first["key"]
    assert lines[1]["run_extra"]["curve"]["method"] == "full"
    assert runner.main([*argv, "--curve", "full"]) == 0 and len(res.read_text().splitlines()) == 2


def test_a_duplicate_cell_is_refused_naming_both_lines(tmp_path):
    out = tmp_path / "r"
    jsonl.append(out / "results.jsonl", _rec(key="a"))
    jsonl.append(out / "results.jsonl", _rec(key="b", acc=70.0))  # same cell, seeds, config and code
    ok, _ = load_records([out])
    with pytest.raises(DuplicateRecords, match=r"results.jsonl:1 and .*results.jsonl:2"):
        aggregate(ok)
    from benchmarks.leaderboard import main

    assert main([str(out)]) == 2


def test_newest_code_per_cell_and_all_versions(tmp_path):
    old = {**_rec(acc=10.0, key="o"), "code": {"condenser": "old", "evaluator": "e"}, "created_utc": "2026-01-01T00:00:00Z"}
    new = _rec(acc=60.0, key="n")
    legacy = {k: v for k, v in _rec(acc=5.0, key="l").items() if k not in ("code", "train_seed")}
    (t,) = aggregate([old, new]).values()
    assert [a["mean"] for a in t["rows"]] == [60.0] and "older code" in t["notes"][0]
    (t,) = aggregate([old, new], all_versions=True).values()
    assert sorted(a["method_label"] for a in t["rows"]) == ["random ⟨code c/e⟩", "random ⟨code old/e⟩"]
    legacy["protocol"] = {k: v for k, v in legacy["protocol"].items() if k != "budget"}
    tables = aggregate([legacy])
    (t,) = tables.values()
    assert "epoch budget" in t["heading"] and t["rows"][0]["legacy"] and t["rows"][0]["identity"] == "no identity"


def test_a_changed_condenser_recomputes_its_cell(tmp_path, monkeypatch):
    import condense.methods.base as identity   # where a condenser reads its code identity

    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "1", "--seeds", "0", "--epochs", "1",
            "--checkpoints", "1", "--no-progress", "--out", str(tmp_path / "out")]
    assert runner.main(argv) == 0
    res = tmp_path / "out" / "results.jsonl"
    first = res.read_bytes()
    assert runner.main(argv) == 0 and res.read_bytes() == first  # same code: nothing redone
    real = identity.code_identity

    def changed(method=None, parts=("version", "condenser", "evaluator", "git")):
        out = real(method, parts)
        if "condenser" in out:
            out["condenser"] = "edited-" + out["condenser"]
        return out

    monkeypatch.setattr(identity, "code_identity", changed)
    assert runner.main(argv) == 0
    after = res.read_bytes()
    assert after.startswith(first) and after.count(b"\n") == 2  # appended, never rewritten
    new = json.loads(after.splitlines()[1])
    assert new["code"]["condenser"].startswith("edited-") and new["set_cached"] is False
    assert len(list((tmp_path / "out" / "sets").glob("*.h5"))) == 2  # the set was condensed again


def test_a_sweep_that_would_mix_budgets_in_one_table_is_refused(tmp_path, capsys):
    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "1", "--seeds", "0", "--epochs", "1",
            "--checkpoints", "1", "--no-progress", "--out", str(tmp_path / "out")]
    assert runner.main(argv) == 0
    capsys.readouterr()
    code = runner.main(argv + ["--budget", "epochs"])
    err = capsys.readouterr().err
    assert code == 1 and "budget=steps" in err and "budget=epochs" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- clocks


def test_every_record_the_runner_writes_keeps_the_clock_invariants(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    argv = ["--datasets", "digits", "--methods", "random", "random-kd", "full", "--ipc", "2", "--seeds", "0", "1",
            "--epochs", "1", "--checkpoints", "1", "--no-progress", "--out", str(tmp_path / "out"),
            "--set", "random-kd.teacher_recipe=tiny", "--set", 'random-kd.teachers=["convnet_bn-w32"]']
    assert runner.main(argv) == 0
    recs, bad = jsonl.read(tmp_path / "out" / "results.jsonl")
    assert bad == 0 and len(recs) == 6 and all(r["status"] == "ok" for r in recs)
    for r in recs:
        assert runner.clock_problems(r) == []
        assert r["condense_seconds"] >= r["teacher_seconds"]
        assert r["condense_cpu_seconds"] is not None and r["condense_cpu_seconds"] >= r["teacher_cpu_seconds"]
        assert r["eval_seconds"] > 0 and r["eval_cpu_seconds"] > 0 and r["cpu_seconds"] > 0
    kd = [r for r in recs if r["method"] == "random-kd"]
    assert len({r["teacher_seconds"] for r in kd}) == 1 and kd[0]["teacher_seconds"] > 0  # the pool, one cost
    assert runner.clock_problems({"condense_seconds": 1.0, "teacher_seconds": 2.0})  # the invariant can fail


def test_a_resumed_teacher_counts_on_both_clocks(tmp_path, monkeypatch, digits):
    """An interrupted teacher resumed later brings back seconds that no clock of the resuming call
    measured: condense time must still include the whole teacher cost (it did not, before)."""
    import condense.teachers as teachers

    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    restore = kill_teachers_after(monkeypatch, 2)  # two epochs in: killed
    recipe = teachers.TeacherRecipe(name="tiny-4", epochs=4, batch_size=128)
    with pytest.raises(KeyboardInterrupt):
        teachers.train_teacher(digits["train"], "convnet_bn-w32", recipe, val=digits["val"])
    restore()
    t = teachers.train_teacher(digits["train"], "convnet_bn-w32", recipe, val=digits["val"])
    assert not t.cached and t.fresh_seconds < t.train_seconds and t.fresh_cpu_seconds < t.cpu_seconds
    costs = teachers.pool_costs([t])
    assert costs.seconds == t.train_seconds and costs.fresh_seconds == t.fresh_seconds


def test_resumed_teacher_set_keeps_condense_above_teacher(tmp_path, monkeypatch, digits):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    restore = kill_teachers_after(monkeypatch, 2)
    cond = create_condenser("random-kd", "quick", teacher_recipe="tiny", teachers=("convnet_bn-w32",))
    with pytest.raises(KeyboardInterrupt):
        cond.condense(digits["train"], 2, seed=0)
    restore()
    s = cond.condense(digits["train"], 2, seed=0)
    assert s.condense_seconds >= s.teacher_seconds > 0
    assert s.extra["condense_cpu_seconds"] >= s.extra["teacher_cpu_seconds"] > 0


# ----------------------------------------------------------------------------- TTA grids, storage


def test_speedup_only_between_matching_checkpoint_grids():
    full = {**_rec("full", acc=90.0, key="f"), "curve": [{"train_seconds": 20.0, "acc": 65.0}]}
    same = _rec("rs2", acc=70.0, key="s")
    other = {**_rec("random", acc=70.0, key="r"), "plan": {"steps": 301, "checkpoint_every": 30.1}}
    (t,) = aggregate([full, same, other]).values()
    rows = {a["method"]: a for a in t["rows"]}
    assert rows["rs2"]["speedup"]["60"] == pytest.approx(21.0 / 6.0)
    assert rows["random"]["speedup"] == {} and "every 30.1 steps" in rows["random"]["speedup_note"]
    assert any("No TTA speedup for random (IPC 10)" in n and "every 30.1 steps" in n for n in t["notes"])


def test_rs2_rows_show_the_source_they_read(tmp_path):
    argv = ["--datasets", "digits", "--methods", "rs2", "--protocol", "rs2", "--ipc", "1", "--seeds", "0",
            "--epochs", "2", "--checkpoints", "1", "--no-progress", "--out", str(tmp_path / "out")]
    assert runner.main(argv) == 0
    (r,), _ = jsonl.read(tmp_path / "out" / "results.jsonl")
    assert r["reads_bytes"] == 1293 * 64 + 1293 * 8 > r["storage_bytes"]["total"]


# ----------------------------------------------------------------------------- DD-Ranking scores


def test_score_arithmetic():
    assert normalised(1.0) == pytest.approx(1.0) and normalised(-1.0) == pytest.approx(0.0)
    assert lrs(hlr=0.10, ior=0.30) == pytest.approx((math.exp(0.1) - math.exp(-1)) / (math.e - math.exp(-1)))
    assert ars(0.2, 0.0) == pytest.approx(normalised(0.1))


def _score_records():
    soft = {"augment": "crop-flip", "mixup_alpha": 0.8, "loss": "kd", "name": "kd", "batch_size": 64}
    plain = {**soft, "augment": None, "mixup_alpha": 0.0}
    recs = []
    for seed in (0, 1):
        recs += [
            {**_rec("infer", acc=80.0, seed=seed, **soft), "storage_bytes": {"total": 10, "soft_labels": 5}},
            {**_rec("random-kd", acc=70.0, seed=seed, **soft), "storage_bytes": {"total": 10, "soft_labels": 5}},
            {**_rec("infer", acc=60.0, seed=seed, **plain), "storage_bytes": {"total": 10, "soft_labels": 5}},
            {**_rec("random-kd", acc=56.0, seed=seed, **plain), "storage_bytes": {"total": 10, "soft_labels": 5}},
            {**_rec("infer", acc=40.0, seed=seed), "storage_bytes": {"total": 10, "soft_labels": 5}},
            _rec("full", acc=90.0, seed=seed),
        ]
    return recs


def test_scores_from_hand_made_records():
    tables = aggregate(_score_records())
    kd = next(t for t in tables.values() if t["protocol_dict"]["name"] == "kd" and t["protocol_dict"]["augment"])
    s = next(a for a in kd["rows"] if a["method"] == "infer")["scores"]
    assert s["hlr"] == pytest.approx(0.50) and s["ior"] == pytest.approx(0.10)
    assert s["lrs"] == pytest.approx(normalised((0.10 - 0.50) / 2))
    assert s["ars"] == pytest.approx(normalised(0.5 * 0.10 + 0.5 * 0.04))


def test_scores_never_combine_different_budgets_or_configs():
    recs = _score_records()
    other_budget = [{**r, "protocol": {**r["protocol"], "budget": "epochs"}} if r["method"] == "full" else r
                    for r in recs]
    tables = aggregate(other_budget)
    kd = next(t for t in tables.values() if t["protocol_dict"]["name"] == "kd" and t["protocol_dict"]["augment"])
    s = next(a for a in kd["rows"] if a["method"] == "infer")["scores"]
    assert s["hlr"] is None and s["lrs"] is None and s["ior"] == pytest.approx(0.10)
    other_config = [{**r, "method_config": {"iterations": 5}} if r["method"] == "infer" and r["protocol"]["name"] == "dc"
                    else r for r in recs]
    s = next(a for t in aggregate(other_config).values() for a in t["rows"]
             if a["method"] == "infer" and t["protocol_dict"]["name"] == "kd" and t["protocol_dict"]["augment"])["scores"]
    assert s["hlr"] is None  # the hard-label row is another set (config): not combined
    other_epochs = [{**r, "protocol": {**r["protocol"], "epochs": 100}} if r["method"] == "random-kd"
                    and r["protocol"]["augment"] is None else r for r in recs]
    s = next(a for t in aggregate(other_epochs).values() for a in t["rows"]
             if a["method"] == "infer" and t["protocol_dict"]["name"] == "kd" and t["protocol_dict"]["augment"])["scores"]
    assert s["ars"] is None  # random-kd without augmentation trained another length: no Δ


def test_ior_takes_its_baseline_under_the_scored_rows_configuration():
    """A kd table holding random-kd rows with quick and with paper teachers: INFER (quick teachers, 80 %)
    is scored against the quick random-kd row (70 %: IOR 0.10), never the paper one (40 %: 0.40); with
    no random-kd row of its teachers the score is "—" with the reason, and with two it is ambiguous."""
    soft = {"augment": "crop-flip", "mixup_alpha": 0.8, "loss": "kd", "name": "kd", "batch_size": 64}
    quick = {"teachers": ["convnet_bn"], "teacher_recipe": "quick", "teacher_seed": 0}
    paper = {**quick, "teacher_recipe": "paper"}

    def row(method, acc, cfg, seed=0):
        return {**_rec(method, acc=acc, seed=seed, **soft), "method_config": cfg,
                "storage_bytes": {"total": 10, "soft_labels": 5}}

    infer = row("infer", 80.0, {**quick, "iterations": 50})
    tables = aggregate([infer, row("random-kd", 40.0, paper), row("random-kd", 70.0, quick)])
    (t,) = tables.values()
    s = next(a for a in t["rows"] if a["method"] == "infer")["scores"]
    assert s["ior"] == pytest.approx(0.10)
    (t,) = aggregate([infer, row("random-kd", 40.0, paper)]).values()
    s = next(a for a in t["rows"] if a["method"] == "infer")["scores"]
    assert s["ior"] is None and "under infer's configuration" in s["notes"][0]
    twin = row("random-kd", 71.0, {**quick, "soft_label_dtype": "float32"})
    (t,) = aggregate([infer, row("random-kd", 70.0, quick), twin]).values()
    s = next(a for a in t["rows"] if a["method"] == "infer")["scores"]
    assert s["ior"] is None and "2 random-kd rows" in s["notes"][0]


def test_tables_carry_n_std_interval_steps_and_scores_in_every_format(tmp_path):
    out = tmp_path / "r"
    for r in _score_records():
        jsonl.append(out / "results.jsonl", r)
    md = build([out], out, with_plots=False)
    assert "| acc % ± 95 % CI |" in md and "| n |" in md and "steps (samples)" in md and "## DD-Ranking scores" in md
    csv = (out / "leaderboard.csv").read_text().splitlines()
    assert all(c in csv[0].split(",") for c in ("n", "std", "ci95", "steps", "samples", "hlr", "ior", "lrs", "ars"))
    page = (out / "leaderboard.html").read_text()
    assert "95 % CI" in page and "DD-Ranking scores" in page and "steps (samples)" in page


def test_old_results_files_still_read_labelled(tmp_path):
    old = Path(__file__).resolve().parents[1] / "results" / "dc-random-reference"
    ok, _ = load_records([old])
    tables = aggregate(ok)
    assert tables and all(a["legacy"] for t in tables.values() for a in t["rows"])
    assert all("epoch budget" in t["heading"] for t in tables.values())


def test_one_writer_per_results_folder(tmp_path):
    """A second sweep into a folder in use stops at once, naming the holder; the lock dies with its holder."""
    first = runner.FolderLock(tmp_path)
    first.acquire()
    with pytest.raises(ValueError, match=r"in use by another sweep \(pid \d+ on .* since "):
        runner.FolderLock(tmp_path).acquire()
    first.release()
    again = runner.FolderLock(tmp_path)
    again.acquire()
    again.release()
