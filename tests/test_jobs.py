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


def test_each_teacher_is_one_task_shared_by_the_pools_that_need_it(tmp_path, monkeypatch):
    """Under --jobs, a teacher two pools share is trained once, by a worker, before either set's
    condensation: both sets then find every teacher cached (a set that trained its own would record
    ``cached: false``, and two workers would race on one teacher file)."""
    import torch

    from benchmarks.ray_executor import teacher_units

    cache = tmp_path / "cache"
    monkeypatch.setenv("CONDENSE_CACHE", str(cache))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    out = tmp_path / "out"
    argv = ["--datasets", "digits", "--methods", "random", "random-kd", "infer", "--ipc", "2", "--seeds", "0",
            "--epochs", "2", "--checkpoints", "1", "--no-progress", "--jobs", "2", "--out", str(out),
            "--set", "random-kd.teacher_recipe=tiny", "--set", 'random-kd.teachers=["convnet_bn-w32","convnet_bn-w32-d2"]',
            "--set", "infer.teacher_recipe=tiny", "--set", 'infer.teachers=["convnet_bn-w32"]',
            "--set", "infer.iterations=2"]
    sweep = runner.Sweep(runner.parse_args(argv))
    jobs = [sweep.set_job([(c, a, sweep.condenser(c.method, c.protocol, c.dataset))]) for c, a in sweep.plan()]
    units = {j.first.method: teacher_units(j, "digits") for j in jobs}
    assert units["random"] == [] and [u[1] for u in units["infer"]] == ["convnet_bn-w32"]
    assert [u[1] for u in units["random-kd"]] == ["convnet_bn-w32", "convnet_bn-w32-d2"]
    sweep.lock.release()
    assert runner.main(argv) == 0
    recs = _records(out)
    assert len(recs) == 3 and all(r["status"] == "ok" for r in recs.values())
    taught = [r for r in recs.values() if r["method"] != "random"]
    assert len(taught) == 2
    for r in taught:
        assert r["set_extra"]["teachers"] and all(t["cached"] for t in r["set_extra"]["teachers"])
    files = sorted(p.name for p in (cache / "teachers").glob("*.pt"))
    assert len(files) == 2 and any("convnet_bn-w32-d2" in f for f in files)


def test_the_queue_runs_teachers_first_then_the_sets_they_unblock():
    """The order that keeps every worker busy: each shared teacher once and first, a set with teachers
    only once all of them are done (before the teacher-free sets still waiting), and a failed teacher
    fails exactly the sets that need it."""
    from benchmarks.sweep.pool import Queue

    needs = {"infer": ["a", "b"], "cvdd": ["a", "b", "c"], "rk": ["d"], "random": [], "herding": []}
    q = Queue(list(needs), needs.get)
    assert q.units == ["a", "b", "c", "d"]
    assert [q.pop() for _ in range(2)] == [("teacher", "a"), ("teacher", "b")]
    assert q.teacher_done("a", None) == [] and q.pop() == ("teacher", "c")
    assert q.teacher_done("b", None) == [] and q.ready == ["infer"]      # cvdd still waits for c
    assert q.pop() == ("teacher", "d") and q.pop() == ("set", "infer") and q.pop() == ("set", "random")
    boom = RuntimeError("no teacher")
    assert q.teacher_done("d", boom) == [("rk", boom)]                    # never runs
    assert q.teacher_done("c", None) == [] and q.pop() == ("set", "cvdd")  # ahead of herding
    assert q.pop() == ("set", "herding") and not q
