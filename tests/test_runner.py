"""The sweep: resume after a kill, failed cells recorded, leaderboard aggregation by hand."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from condense import jsonl
from benchmarks.leaderboard import aggregate, build, fmt_tta, load_records

from .conftest import REPO

SWEEP = ["--datasets", "digits", "--methods", "random", "herding", "--ipc", "1", "2", "--seeds", "0", "1",
         "--epochs", "40", "--checkpoints", "5", "--no-progress"]


def _run(out: Path, *extra, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *SWEEP, "--out", str(out), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_killed_sweep_resumes_without_redoing_or_corrupting(tmp_path):
    out = tmp_path / "run"
    results = out / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.run", *SWEEP, "--out", str(out)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if results.exists() and results.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = results.read_bytes()
    n_before = before.count(b"\n")
    assert 2 <= n_before < 8, "the kill should land mid-sweep"
    with open(results, "ab") as f:  # as if killed in the middle of writing a line
        f.write(b'{"key": "partial", "sta')
    r = _run(out)
    assert r.returncode == 0, r.stderr
    after = results.read_bytes()
    assert after.startswith(before), "finished lines were rewritten"
    records, bad = jsonl.read(results)
    assert bad == 0
    keys = [rec["key"] for rec in records]
    assert len(keys) == len(set(keys)) == 8  # 2 methods x 2 ipc x 2 seeds, each exactly once
    assert all(rec["status"] == "ok" for rec in records)
    # a third run does nothing new
    r = _run(out)
    assert results.read_bytes() == after
    assert "| 2 | herding |" in r.stdout


def test_failed_cells_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import torch

    from benchmarks import run as runner
    from condense.methods import base
    from condense.methods.base import Condenser

    class Boom(Condenser):
        name = "boom-test"

        def _condense(self, train, ipc, *, seed, device, progress):
            raise RuntimeError("out of memory (simulated)")

    class Diverge(Condenser):
        """Nine valid images (classes 0-8): the patched loss below overflows on this set only."""

        name = "diverge-test"

        def _condense(self, train, ipc, *, seed, device, progress):
            return {"kind": "images", "images": torch.full((9, *train.shape), 200, dtype=torch.uint8),
                    "image_encoding": "uint8", "labels": torch.arange(9)}

    import condense.image_train as ev   # where the loss is

    real_loss = ev._loss
    monkeypatch.setattr(ev, "_loss", lambda model, task, *a: real_loss(model, task, *a) *
                        (float("inf") if task.x.shape[0] == 9 else 1.0))
    monkeypatch.setitem(base._CONDENSERS, "boom-test", Boom)
    monkeypatch.setitem(base._CONDENSERS, "diverge-test", Diverge)
    out = tmp_path / "run"
    code = runner.main(["--datasets", "digits", "--methods", "boom-test", "diverge-test", "random", "--ipc", "1",
                        "--seeds", "0", "--epochs", "5", "--no-progress", "--out", str(out)])
    assert code == 0
    ok, failed = load_records([out])
    assert len(ok) == 1 and ok[0]["method"] == "random"
    errors = {f["method"]: (f["stage"], f["error"]) for f in failed}
    assert errors["boom-test"] == ("condense", "RuntimeError: out of memory (simulated)")
    assert errors["diverge-test"][0] == "evaluate" and errors["diverge-test"][1].startswith("TrainingDiverged: loss became")
    assert "Failed cells" in (out / "leaderboard.md").read_text()


def test_unknown_method_is_one_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", "--methods", "nosuch", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown method 'nosuch'" in r.stderr and "Traceback" not in r.stderr


def _record(dataset, method, ipc, seed, acc, tta60, cond=1.0, bytes_=1000, full=False):
    return {"key": f"{dataset}-{method}-{ipc}-{seed}", "status": "ok", "dataset": dataset, "method": method,
            "ipc": ipc, "seed": seed, "arch": "convnet",
            "protocol": {"name": "dc", "version": 1, "preset": "quick", "epochs": 300, "augment": None},
            "acc": acc, "targets": [60.0], "tta": {"60": tta60}, "condense_seconds": cond,
            "teacher_seconds": 0.0, "train_seconds": 10.0, "storage_bytes": {"total": bytes_},
            "touches_full_data": full, "source": "toy", "curve": [{"train_seconds": 5.0, "acc": acc}]}


def test_leaderboard_aggregation_by_hand(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
    for rec in [_record("toy", "random", 10, 0, 50.0, None), _record("toy", "random", 10, 1, 70.0, 12.0),
                _record("toy", "full", 0, 0, 90.0, 3.0, full=True, bytes_=10 ** 6)]:
        jsonl.append(a / "results.jsonl", rec)
    for rec in [_record("toy", "random", 10, 2, 60.0, 11.0),  # a third seed from another run
                _record("toy", "full", 0, 1, 92.0, 5.0, full=True, bytes_=10 ** 6),
                {**_record("toy", "random", 10, 3, 0.0, None), "status": "failed", "error": "boom"},
                {**_record("toy", "random", 10, 2, 0.0, None), "status": "failed", "error": "retried"}]:
        jsonl.append(b / "results.jsonl", rec)
    ok, failed = load_records([a, b])
    assert len(ok) == 5 and [f["error"] for f in failed] == ["boom"]  # a cell that later succeeded is not failed
    rows = {r["method"]: r for r in next(iter(aggregate(ok).values()))["rows"]}
    assert rows["random"]["n"] == 3 and rows["random"]["mean"] == pytest.approx(60.0)
    assert rows["random"]["std"] == pytest.approx((200 / 3) ** 0.5)
    assert rows["random"]["ci95"] == pytest.approx(4.302653 * 10 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2) · s / √n
    assert rows["random"]["tta"]["60"] == {"mean": None, "reached": 2, "n": 3, "unmeasured": 0}
    # TTA is read off each record's curve: condense 1 s + 5 s of training at the first crossing
    assert rows["full"]["mean"] == pytest.approx(91.0) and rows["full"]["tta"]["60"]["mean"] == pytest.approx(6.0)
    md = build([a, b], tmp_path / "lb")
    # records without a code identity (made by older code) say so in their rows
    # (the compact columns: accuracy ± the 95 % interval; the long ones below: mean ± std)
    assert "| 1 | 10 | random ⟨no identity⟩ | 60.00 ± 24.84 | 3 | n.r. (2/3) | 1,000 B | 1.0 |" in md
    assert "| 1 | all | full ⟨no identity⟩ † | 91.00 ± 12.71 | 2 | 6.0 | 976.6 KB | 1.0 |" in md
    assert "| 10 | random ⟨no identity⟩ | 60.00 ± 8.16 | — | 10.0 |" in md
    assert "| all | full ⟨no identity⟩ † | 91.00 ± 1.00 | — | 10.0 |" in md
    assert "toy random ipc=10 seed=3 convnet: boom" in md
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.html"):
        assert (tmp_path / "lb" / name).stat().st_size > 0


def test_jsonl_repair_trims_only_a_partial_tail(tmp_path):
    p = tmp_path / "r.jsonl"
    jsonl.append(p, {"key": "a"})
    good = p.read_bytes()
    with open(p, "ab") as f:
        f.write(b'{"key": "b", "x"')
    assert jsonl.read(p) == ([{"key": "a"}], 1)
    assert jsonl.repair(p) == len(b'{"key": "b", "x"')
    assert p.read_bytes() == good and jsonl.repair(p) == 0


def test_curves_are_stored_by_column_and_read_back_as_points(tmp_path):
    p = tmp_path / "r.jsonl"
    curve = [{"step": 10, "epoch": 0, "acc": 12.345678, "train_seconds": 1.23456789},
             {"step": 20, "epoch": 1, "acc": 50.0, "train_seconds": 2.5, "val_acc": 40.004}]
    jsonl.append(p, {"key": "a", "curve": curve})
    stored = json.loads(p.read_bytes())
    assert stored["curve"]["step"] == [10, 20] and stored["curve"]["val_acc"] == [None, 40.0]
    (rec,), bad = jsonl.read(p)
    assert bad == 0
    assert rec["curve"] == [{"step": 10, "epoch": 0, "acc": 12.35, "train_seconds": 1.235},
                            {"step": 20, "epoch": 1, "acc": 50.0, "train_seconds": 2.5, "val_acc": 40.0}]


def test_compact_rewrites_old_records_without_losing_any(tmp_path):
    p = tmp_path / "r.jsonl"
    points = [{"step": i, "acc": 100 * i / 7, "train_seconds": i / 3} for i in range(50)]
    old = [{"key": str(k), "acc": 1.0 * k, "curve": points} for k in range(3)]
    p.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in old) + b'{"key": "partial"')
    before, after = jsonl.compact(p)
    assert after < before / 2 and p.stat().st_size == after
    records, bad = jsonl.read(p)
    assert bad == 1 and p.read_bytes().endswith(b'{"key": "partial"')
    assert [r["key"] for r in records] == ["0", "1", "2"]
    assert [c["acc"] for c in records[0]["curve"]] == [round(100 * i / 7, 2) for i in range(50)]
    assert jsonl.compact(p)[1] == after  # idempotent


def test_cpu_clock_tta_puts_the_condense_time_on_the_cpu_clock_too():
    rec = {**_record("toy", "infer", 10, 0, 70.0, 105.0, cond=100.0),
           "set_extra": {"condense_cpu_seconds": 20.0},
           "curve": [{"train_seconds": 3.0, "cpu_seconds": 2.0, "acc": 40.0},
                     {"train_seconds": 5.0, "cpu_seconds": 4.0, "acc": 65.0}]}
    old = {**_record("toy", "random", 10, 0, 70.0, 6.0, cond=1.0),  # no CPU condense time recorded
           "curve": [{"train_seconds": 5.0, "cpu_seconds": 4.5, "acc": 61.0}]}
    (wall,) = aggregate([rec, old]).values()
    (cpu,) = aggregate([rec, old], clock="cpu").values()
    by = {a["method"]: a for a in wall["rows"]}
    assert by["infer"]["tta"]["60"]["mean"] == 105.0 and by["infer"]["condense_seconds"] == 100.0
    by = {a["method"]: a for a in cpu["rows"]}
    assert by["infer"]["tta"]["60"]["mean"] == 24.0 and by["infer"]["condense_seconds"] == 20.0
    assert by["infer"]["curves"] == [(20.0, [(2.0, 40.0, True), (4.0, 65.0, True)])]
    # no column mixes clocks: a record without CPU condense time is unmeasured there, never its wall time
    assert by["random"]["condense_seconds"] is None and fmt_tta(by["random"]["tta"]["60"]) == "—"
    (wall,) = aggregate([{**old, "curve": [{"train_seconds": 5.0, "acc": 61.0}]}]).values()
    assert fmt_tta(wall["rows"][0]["tta"]["60"]) == "6.0"
    cell = {"mean": 13.5, "reached": 3, "n": 3}
    assert fmt_tta(cell, 0.0444) == "13.5 (×0.044)" and fmt_tta(cell, 1.44) == "13.5 (×1.4)"  # never "×0.0"


def test_the_time_plot_draws_screened_estimates_apart_from_full_passes():
    """A mean curve point is a full pass only when every seed's point there is one; the accuracy-vs-time
    plot draws the others hollow (a screened estimate is not a measured accuracy)."""
    from benchmarks.report.plots import mean_curve, plots

    screened = {"train_seconds": 3.0, "acc": 40.0, "on": "subset", "screened": 64}
    a = {**_record("toy", "random", 10, 0, 70.0, 6.0),
         "curve": [screened, {"train_seconds": 5.0, "acc": 65.0, "on": "full"}]}
    b = {**_record("toy", "random", 10, 1, 70.0, 6.0),
         "curve": [{**screened, "on": "full", "acc": 42.0}, {"train_seconds": 5.0, "acc": 66.0}]}
    (t,) = aggregate([a, b]).values()
    xs, ys, full = mean_curve(t["rows"][0]["curves"])
    assert ys == [41.0, 65.5] and full == [False, True]
    import matplotlib.pyplot as plt

    drawn = []
    real = plt.Axes.scatter
    try:
        plt.Axes.scatter = lambda self, *args, **kw: drawn.append(kw.get("facecolors")) or real(self, *args, **kw)
        assert len(plots({k: v for k, v in aggregate([a, b]).items()})) == 1
    finally:
        plt.Axes.scatter = real
    assert "white" in drawn and any(isinstance(f, str) and f.startswith("#") for f in drawn)


def test_the_main_jobs_quick_budgets_come_from_the_dataset_config_and_the_cli_wins(tmp_path):
    """digits under `quick`: 100 epochs, 25 checkpoints, INFER at 50 iterations, CV-DD at 25 with replay
    labels for 150 epochs (the main job's sizes); `--epochs`, `--checkpoints` and `--set` replace them; `paper` and other
    datasets keep their own."""
    from benchmarks.run import Sweep, parse_args

    sweep = Sweep(parse_args(["--out", str(tmp_path / "a"), "--no-progress"]))
    p = sweep.protocol("images", "digits")
    assert (p.epochs, p.checkpoints) == (100, 25)
    assert sweep.condenser("infer", p, "digits").config.iterations == 50
    cvdd = sweep.condenser("cvdd", p, "digits").config
    assert (cvdd.iterations, cvdd.soft_labels, cvdd.replay_epochs) == (25, "replay", 150)
    mnist = sweep.condenser("cvdd", sweep.protocol("images", "mnist"), "mnist").config
    assert (mnist.iterations, mnist.replay_epochs) == (500, 300)
    assert sweep.condenser("infer", sweep.protocol("images", "mnist"), "mnist").config.iterations == 200
    assert sweep.protocol("images", "mnist").epochs == 300
    sweep.lock.release()
    cli = Sweep(parse_args(["--out", str(tmp_path / "b"), "--epochs", "7", "--checkpoints", "3",
                            "--set", "infer.iterations=5", "--no-progress"]))
    p = cli.protocol("images", "digits")
    assert (p.epochs, p.checkpoints) == (7, 3) and cli.condenser("infer", p, "digits").config.iterations == 5
    cli.lock.release()
    paper = Sweep(parse_args(["--out", str(tmp_path / "c"), "--preset", "paper", "--no-progress"]))
    assert paper.protocol("images", "digits").epochs == 1000
    paper.lock.release()


def test_together_stacks_the_training_seeds_of_a_set_and_keeps_its_own_table(tmp_path):
    """`--together 2 --train-seeds 2`: one stacked evaluation per set trains both training seeds, each
    recorded as its own run (its seed, its curve, `together` 2); a sweep without stacking into the same
    folder runs the same cells again (other keys) and the leaderboard keeps the two apart."""
    out = tmp_path / "run"
    args = ["--datasets", "digits", "--methods", "random", "--ipc", "1", "--seeds", "0", "--train-seeds", "2",
            "--epochs", "6", "--checkpoints", "2", "--no-progress", "--out", str(out)]
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", *args, "--together", "2"], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    recs, _ = jsonl.read(out / "results.jsonl")
    assert len(recs) == 2 and all(x["status"] == "ok" and x["together"] == 2 for x in recs)
    assert len({x["train_seed"] for x in recs}) == 2 and recs[0]["curve"] != recs[1]["curve"]
    assert all(x["run_extra"]["together"] == 2 for x in recs)
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", *args], cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    recs, _ = jsonl.read(out / "results.jsonl")
    assert len(recs) == 4 and sum("together" not in x for x in recs) == 2
    tables = aggregate(load_records([out])[0])
    assert len(tables) == 2
    assert any("2 training seeds stacked" in t["heading"] for t in tables.values())
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, "-m", "benchmarks.run", *args, "--together", "0"], cwd=REPO,
                       capture_output=True, check=True, timeout=600)


SWEEP_FILE = """
datasets = ["digits"]
methods = ["random", "herding"]
ipc = [1, 2]
seeds = [0, 1]
epochs = 40
checkpoints = 5
no_progress = true

[set.herding]
width = 64
"""


def _plan(args):
    from benchmarks.run import Sweep

    sweep = Sweep(args)
    try:
        return [(c.label, c.protocol, tuple(a), dataclasses.asdict(sweep.condenser(c.method, c.protocol, c.dataset).config))
                for c, a in sweep.plan()]
    finally:
        sweep.lock.release()


def test_a_sweep_file_gives_the_cells_of_the_same_command_line_and_flags_override_it(tmp_path):
    from benchmarks.run import parse_args, sweep_args

    f = tmp_path / "sweep.toml"
    f.write_text(f'out = "{tmp_path / "a"}"\n' + SWEEP_FILE)
    (file_args,) = sweep_args(["--config", str(f)])
    cli = parse_args([*SWEEP, "--set", "herding.width=64", "--out", str(tmp_path / "b")])
    assert _plan(file_args) == _plan(cli) and len(_plan(cli)) == 8
    (over,) = sweep_args(["--config", str(f), "--ipc", "3", "--set", "herding.train_epochs=1"])
    assert over.ipc == (3,) and over.seeds == (0, 1) and over.epochs == 40
    assert over.overrides == ("herding.width=64", "herding.train_epochs=1")
    f.write_text(SWEEP_FILE + '[[run]]\nout = "x"\n[[run]]\nout = "y"\nipc = [5]\n[run.set.herding]\ntrain_epochs = 2\n')
    one, two = sweep_args(["--config", str(f)])
    assert (str(one.out), one.ipc, str(two.out), two.ipc) == ("x", (1, 2), "y", (5,))
    assert one.overrides == ("herding.width=64",) and sorted(two.overrides) == ["herding.train_epochs=2", "herding.width=64"]


@pytest.mark.parametrize("text, message", [
    ('datasets = ["digits"]\nbogus = 1\n', "unknown key 'bogus'"),
    ('ipc = "ten"\n', "ipc must be a list of integers >= 1, got ('ten',)"),
    ('preset = "fast"\n', "preset must be one of 'quick', 'paper'"),
    ('seeds = [0, 1.5]\n', "seeds must be a list of integers"),
    ('config = "other.toml"\n', "unknown key 'config'"),
    ('ipc = [1,\n', "not a TOML sweep file"),
    ('[set]\nherding = 3\n', "set must be a table of method tables"),
])
def test_a_bad_sweep_file_is_one_line_naming_the_file(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", "--config", str(f), "--out", str(tmp_path / "o")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert str(f) in r.stderr and message in r.stderr
    assert not (tmp_path / "o").exists()


def test_run_sweep_returns_the_records_the_command_line_writes(tmp_path):
    """The Python API runs the same sweep as the CLI: the same cells, accuracies bit for bit."""
    from benchmarks import SweepSpec, run_sweep

    spec = SweepSpec(datasets=("digits",), methods=("random",), ipc=(1,), seeds=(0, 1), epochs=20, checkpoints=2,
                     no_progress=True, out=tmp_path / "api")
    got = run_sweep(spec)
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", "--datasets", "digits", "--methods", "random",
                        "--ipc", "1", "--seeds", "0", "1", "--epochs", "20", "--checkpoints", "2", "--no-progress",
                        "--out", str(tmp_path / "cli")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    want, _ = jsonl.read(tmp_path / "cli" / "results.jsonl")
    assert len(got) == 2 and [x["key"] for x in got] == [x["key"] for x in want]
    assert [x["acc"] for x in got] == [x["acc"] for x in want]
    assert run_sweep({"datasets": ["digits"], "methods": ["random"], "ipc": [1], "seeds": [0], "epochs": 20,
                      "checkpoints": 2, "no_progress": True, "out": str(tmp_path / "api")}) == got[:1]
    with pytest.raises(ValueError, match="run_sweep: unknown key 'ipcs'"):
        run_sweep(ipcs=[1])


@pytest.mark.parametrize("path", sorted((REPO / "results").rglob("sweep.toml")), ids=lambda p: str(p.parent.name))
def test_every_results_sweep_file_runs_as_written(path):
    """Each results folder's sweep file parses, passes every check a sweep makes before work, and
    writes into its own folder."""
    from benchmarks.run import check_args, sweep_args

    runs = sweep_args(["--config", str(path)])
    folder = path.parent.relative_to(REPO)
    for args in runs:
        check_args(args)
        assert args.out == folder or folder in args.out.parents, (path, args.out)


def test_the_command_line_sweep_files_and_the_api_share_one_typed_spec(tmp_path):
    """Every field of SweepSpec is a flag of the generated command line, and one rule checks a value
    wherever it comes from, with the same one-line error naming where it came from."""
    import dataclasses

    from benchmarks import SweepSpec, run_sweep
    from benchmarks.run import build_parser, parse_args

    help_text = build_parser().format_help()
    for f in dataclasses.fields(SweepSpec):
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        assert flag in help_text, flag
    spec = parse_args(["--ipc", "1", "2", "--seeds", "3", "--set", "herding.width=8", "--out", str(tmp_path)])
    assert spec.ipc == (1, 2) and spec.seeds == (3,) and spec.overrides == ("herding.width=8",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.ipc = (5,)
    want = "together must be an integer in [1, 1,000], got 0"
    for where, make in (("command line", lambda: parse_args(["--together", "0"])),
                        ("sweep.toml", lambda: SweepSpec.from_mapping({"together": 0}, "sweep.toml")),
                        ("run_sweep", lambda: run_sweep(together=0, out=str(tmp_path / "x")))):
        with pytest.raises(ValueError) as e:
            make()
        assert str(e.value) == f"{where}: {want}"
    assert not (tmp_path / "x").exists()


def test_the_main_job_adds_each_soft_label_methods_own_protocol_table(tmp_path):
    """With no --methods and no --protocol, digits also plans CV-DD and SRe2L++ under fkd (150 epochs) and
    INFER under kd (1,000 epochs), each with random-kd, on the first set seed; the dc table keeps every
    method and seed, and its CV-DD sets are the fkd table's (replay labels for those 150 epochs of 16), so
    the first set seed is condensed once. Naming methods or a protocol plans none of them."""
    from benchmarks.run import Sweep, parse_args

    sweep = Sweep(parse_args(["--out", str(tmp_path / "a"), "--datasets", "digits", "--no-progress"]))
    cells = [c for c, _ in sweep.plan()]
    sweep.lock.release()
    native = {(c.protocol.name, c.method, c.seed, c.protocol.epochs) for c in cells if c.protocol.name != "dc"}
    assert native == {("fkd", m, 0, 150) for m in ("random-kd", "cvdd", "sre2l++")} | \
        {("kd", m, 0, 1000) for m in ("random-kd", "infer")}
    dc = {(c.method, c.seed) for c in cells if c.protocol.name == "dc"}
    assert {("cvdd", 2), ("infer", 1), ("random", 2)} <= dc
    made = {c.protocol.name: sweep.condenser("cvdd", c.protocol, "digits").config for c in cells if c.method == "cvdd"}
    assert made["dc"] == made["fkd"] and made["fkd"].soft_labels == "replay"
    assert (made["fkd"].replay_epochs, made["fkd"].replay_batch) == (150, 16)
    named = Sweep(parse_args(["--out", str(tmp_path / "b"), "--datasets", "digits", "--methods", "random", "infer",
                              "--no-progress"]))
    assert {c.protocol.name for c, _ in named.plan()} == {"dc"}
    named.lock.release()
    proto = Sweep(parse_args(["--out", str(tmp_path / "c"), "--datasets", "digits", "--protocol", "kd", "--no-progress"]))
    assert {(c.protocol.name, c.protocol.epochs) for c, _ in proto.plan()} == {("kd", 100)}
    proto.lock.release()


def test_a_known_dataset_missing_on_disk_is_not_offered_as_its_own_spelling():
    from benchmarks.sweep.plan import nothing_to_run
    missing = nothing_to_run(["mnist"])
    assert "did you mean" not in missing and "CONDENSE_DATA" in missing
    assert "did you mean 'mnist'?" in nothing_to_run(["mnsit"])
