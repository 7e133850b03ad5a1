"""The ray executor on a real local Ray instance (2 CPUs): the same records as the local executor, bit
for bit; failures recorded while other cells finish; a teacher pool trained once as a task; a dead
address refused at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO

pytest.importorskip("ray")

SWEEP = ["--datasets", "digits", "--methods", "random", "herding", "--ipc", "1", "2", "--seeds", "0", "1",
         "--epochs", "20", "--checkpoints", "2", "--no-progress"]


def _run(*args, env=None, timeout=900):
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=e)


def _records(out):
    from condense import jsonl

    return {r["key"]: r for r in jsonl.read(out / "results.jsonl")[0]}


def _run_pid(*args, timeout=900) -> tuple[int, int, str]:
    """Like :func:`_run`, and the driver's process id: (pid, exit code, stderr)."""
    e = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.run", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)
    _, err = proc.communicate(timeout=timeout)
    return proc.pid, proc.returncode, err


def test_ray_gives_the_local_records_bit_for_bit(tmp_path):
    """The same records as the local executor; each record's machine is the worker's that measured it
    (its process), not the driver's."""
    local_pid, code, err = _run_pid(*SWEEP, "--out", str(tmp_path / "local"))
    assert code == 0, err
    ray_pid, code, err = _run_pid(*SWEEP, "--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-cpus", "2")
    assert code == 0, err
    a, b = _records(tmp_path / "local"), _records(tmp_path / "ray")
    assert {r["machine"]["pid"] for r in a.values()} == {local_pid}
    workers = {r["machine"]["pid"] for r in b.values()}
    assert ray_pid not in workers and all(r["machine"]["device_kind"] == "cpu" for r in b.values())
    assert all(r["machine"]["torch_threads"] == 1 for r in b.values())  # the worker's threads (--cpus-per-cell 1)
    assert len(a) == 8 and a.keys() == b.keys()
    for k in a:
        assert a[k]["status"] == b[k]["status"] == "ok"
        assert a[k]["acc"] == b[k]["acc"] and [c["acc"] for c in a[k]["curve"]] == [c["acc"] for c in b[k]["curve"]]
        assert a[k]["storage_bytes"] == b[k]["storage_bytes"] and a[k]["set_path"] == b[k]["set_path"]
    assert sorted(p.name for p in (tmp_path / "ray" / "sets").iterdir()) == \
        sorted(p.name for p in (tmp_path / "local" / "sets").iterdir())
    latest = Path("/tmp/ray/session_latest")
    session = os.readlink(latest) if latest.is_symlink() else None
    again = _run(*SWEEP, "--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-cpus", "2")
    assert again.returncode == 0 and len(_records(tmp_path / "ray")) == 8   # resumed: nothing new
    assert (os.readlink(latest) if latest.is_symlink() else None) == session   # and no Ray instance started


def test_a_failing_cell_is_recorded_and_the_teacher_pool_is_trained_once(tmp_path):
    cache = tmp_path / "cache"
    r = _run("--datasets", "digits", "--methods", "random", "infer", "--ipc", "1", "--seeds", "0",
             "--epochs", "5", "--checkpoints", "2", "--no-progress", "--out", str(tmp_path / "o"),
             "--set", "infer.teacher_recipe=tiny", "--executor", "ray", "--ray-cpus", "2",
             env={"CONDENSE_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr
    recs = list(_records(tmp_path / "o").values())
    status = {x["method"]: (x["status"], x.get("stage")) for x in recs}
    assert status == {"random": ("ok", None), "infer": ("failed", "condense")}
    assert "INFER needs ipc_init" in next(x for x in recs if x["method"] == "infer")["error"]
    teachers = [p for p in (cache / "teachers").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert len(teachers) == 4, teachers   # the pool of four (tiny recipe), each trained by its own task before the cell


def test_an_address_that_does_not_answer_is_one_line_within_30_s(tmp_path):
    t = time.time()
    r = _run(*SWEEP, "--out", str(tmp_path / "o"), "--executor", "ray", "--address", "127.0.0.1:9", timeout=60)
    assert time.time() - t < 30
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "127.0.0.1:9 does not answer" in r.stderr and not (tmp_path / "o").exists()


def test_a_killed_ray_driver_resumes_without_losing_or_duplicating(tmp_path):
    """The driver killed mid-sweep (with its local Ray instance): the rerun finishes the sweep, every
    cell once, and leaves the finished lines as they were."""
    import signal

    out = tmp_path / "o"
    results = out / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.run", *SWEEP, "--out", str(out), "--executor", "ray",
                             "--ray-cpus", "2"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 600
    while time.time() < deadline and not (results.exists() and results.read_bytes().count(b"\n") >= 1):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = results.read_bytes()
    assert 1 <= before.count(b"\n") < 8, "the kill should land mid-sweep"
    r = _run(*SWEEP, "--out", str(out), "--executor", "ray", "--ray-cpus", "2")
    assert r.returncode == 0, r.stderr
    after = results.read_bytes()
    assert after.startswith(before)
    keys = [json.loads(line)["key"] for line in after.decode().splitlines()]
    assert len(keys) == len(set(keys)) == 8
