"""``--jobs N``: sets run in N worker processes, the driver the only writer; the same cells and keys as
one process, each run on its share of the threads."""
from __future__ import annotations

import json

import pytest

from benchmarks import run as runner


def _records(out) -> dict:
    return {r["key"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_jobs_run_the_same_cells_in_worker_processes(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)   # the driver's threads, split between 2 jobs
    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "2", "--seeds", "0", "1", "2", "--epochs", "2",
            "--checkpoints", "1", "--no-progress"]
    assert runner.main([*argv, "--out", str(tmp_path / "one")]) == 0
    assert runner.main([*argv, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0
    one, two = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert set(one) == set(two) and all(r["status"] == "ok" for r in two.values())
    import os

    assert {r["machine"]["torch_threads"] for r in two.values()} == {1}
    assert all(r["machine"]["pid"] != os.getpid() for r in two.values())   # trained in the workers
    assert len(list((tmp_path / "two" / "sets").glob("*.h5"))) == 3          # saved by the driver
    assert runner.main([*argv, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0   # resumes: nothing new
    assert len(_records(tmp_path / "two")) == 3


def test_jobs_go_with_the_local_executor(capsys):
    pytest.importorskip("ray")
    assert runner.main(["--jobs", "2", "--executor", "ray", "--no-progress"]) == 2
    assert "--jobs goes with the local executor" in capsys.readouterr().err


def test_the_default_uses_every_core_only_when_enough_sets_are_pending(tmp_path, monkeypatch):
    """``--jobs 0`` (the default): one process per core from 4 pending sets per core on, else the driver
    alone; a finished folder has nothing pending, so its rerun stays in the driver."""
    import os

    import torch

    from benchmarks.sweep import pool
    assert pool.auto_jobs(8, cores=2) == 2 and pool.auto_jobs(7, cores=2) == 1 and pool.auto_jobs(100, cores=1) == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    out = tmp_path / "many"
    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "1", "--seeds", *map(str, range(8)),
            "--epochs", "2", "--checkpoints", "1", "--no-progress", "--out", str(out)]
    sweep = runner.Sweep(runner.parse_args(argv))
    groups = {(c.dataset, c.method, c.seed): [(c, a, sweep.condenser(c.method, c.protocol, c.dataset))]
              for c, a in sweep.plan()}
    assert len(groups) == 8 and pool.jobs_for(sweep, groups) == 2
    sweep.lock.release()
    assert runner.main(argv) == 0
    recs = _records(out)
    assert len(recs) == 8 and all(r["machine"]["pid"] != os.getpid() for r in recs.values())
    again = runner.Sweep(runner.parse_args(argv))
    groups = {(c.dataset, c.method, c.seed): [(c, a, again.condenser(c.method, c.protocol, c.dataset))]
              for c, a in again.plan()}
    assert pool.jobs_for(again, groups) == 1   # every run done: nothing to spread
    again.lock.release()
