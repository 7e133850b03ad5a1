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
