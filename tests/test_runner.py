"""The sweep: resume after a kill, failed cells recorded, leaderboard aggregation by hand."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import jsonl
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

    import condense.evaluate as ev

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
    assert "| 10 | random ⟨no identity⟩ | 60.00 ± 8.16 | 3 | ±24.84 | — | n.r. (2/3) |" in md
    assert "| all | full ⟨no identity⟩ † | 91.00 ± 1.00 | 2 | ±12.71 | — | 6.0 |" in md
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
    assert by["infer"]["curves"] == [(20.0, [(2.0, 40.0), (4.0, 65.0)])]
    # no column mixes clocks: a record without CPU condense time is unmeasured there, never its wall time
    assert by["random"]["condense_seconds"] is None and fmt_tta(by["random"]["tta"]["60"]) == "—"
    (wall,) = aggregate([{**old, "curve": [{"train_seconds": 5.0, "acc": 61.0}]}]).values()
    assert fmt_tta(wall["rows"][0]["tta"]["60"]) == "6.0"


def test_the_main_jobs_quick_budgets_come_from_the_dataset_config_and_the_cli_wins(tmp_path):
    """digits under `quick`: 100 epochs, 25 checkpoints, INFER at 100 iterations (the main job's sizes);
    `--epochs`, `--checkpoints` and `--set` replace them; `paper` and other datasets keep their own."""
    from benchmarks.run import Sweep, parse_args

    sweep = Sweep(parse_args(["--out", str(tmp_path / "a"), "--no-progress"]))
    p = sweep.protocol("images", "digits")
    assert (p.epochs, p.checkpoints) == (100, 25)
    assert sweep.condenser("infer", p, "digits").config.iterations == 100
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
