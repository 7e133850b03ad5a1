"""Hostile runs, third pass: a cached set is reused only for its own cell, whatever file an attacker
puts at its path."""
from __future__ import annotations

import json
import shutil

from benchmarks import run as runner


def _records(out) -> dict:
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["ipc"], r["seed"]): r for r in recs}


def _set(out, ipc: int, seed: int):
    (path,) = (out / "sets").glob(f"digits-random-ipc{ipc}-s{seed}-*.h5")
    return path


def test_a_cached_set_is_reused_only_for_its_own_cell(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "1", "2", "--seeds", "0", "1", "--epochs", "2",
            "--checkpoints", "1", "--no-progress", "--out", str(out)]
    assert runner.main(argv) == 0
    genuine = {k: r["acc"] for k, r in _records(out).items()}
    assert len(genuine) == 4

    # the seed-0 and seed-1 sets swapped: each is another cell's set
    a, b = _set(out, 1, 0), _set(out, 1, 1)
    tmp = tmp_path / "swap.h5"
    shutil.copyfile(a, tmp)
    shutil.copyfile(b, a)
    shutil.copyfile(tmp, b)
    (out / "results.jsonl").unlink()
    capsys.readouterr()
    assert runner.main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("is not this cell's set (seed") == 2 and "moved to" in err
    again = _records(out)
    assert {k: r["acc"] for k, r in again.items()} == genuine and not any(r["set_cached"] for r in again.values()
                                                                          if r["ipc"] == 1)
    assert len(list((out / "sets" / "aside").glob("*.h5"))) == 2   # moved aside, never deleted

    # an IPC-2 set copied over the IPC-1 path
    shutil.copyfile(_set(out, 2, 0), _set(out, 1, 0))
    (out / "results.jsonl").unlink()
    assert runner.main(argv) == 0
    assert "is not this cell's set (ipc 2, the cell's 1)" in capsys.readouterr().err
    third = _records(out)
    assert third[(1, 0)]["acc"] == genuine[(1, 0)] and third[(1, 0)]["storage_bytes"]["total"] < \
        third[(2, 0)]["storage_bytes"]["total"]
    assert len(list((out / "sets" / "aside").glob("*.h5"))) == 3


def test_a_sweep_that_runs_nothing_fails_and_names_the_closest_spelling(tmp_path, capsys):
    argv = ["--datasets", "cifar-10", "mnistt", "--methods", "random", "--ipc", "1", "--seeds", "0", "--no-progress",
            "--out", str(tmp_path / "a")]
    assert runner.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: nothing to run") and "did you mean 'cifar10'" in err and "did you mean 'mnist'" in err
    argv = ["--datasets", "digits", "--methods", "mirage", "--ipc", "1", "--seeds", "0", "--no-progress",
            "--out", str(tmp_path / "b")]
    assert runner.main(argv) == 1
    assert "nothing to run: no dataset, method and architecture apply" in capsys.readouterr().err


def test_a_results_file_that_is_a_link_or_a_fifo_is_refused_and_nothing_is_changed(tmp_path, capsys):
    import os

    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(b'{"key": "x", "status": "ok"}\n{"partial')
    before = elsewhere.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").symlink_to(elsewhere)
    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "1", "--seeds", "0", "--epochs", "1",
            "--checkpoints", "1", "--no-progress", "--out", str(out)]
    assert runner.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "is a symbolic link" in err[-1] and len(err) == 1
    assert elsewhere.read_bytes() == before                       # nothing deleted, nothing appended
    from benchmarks.leaderboard import main as leaderboard

    try:
        leaderboard([str(out)])
        raise AssertionError("a linked results file was read")
    except SystemExit as e:
        assert "is a symbolic link" in str(e)

    fifo = tmp_path / "fifo-out"
    fifo.mkdir()
    os.mkfifo(fifo / "results.jsonl")
    assert runner.main(argv[:-1] + [str(fifo)]) == 1              # refused at once, never blocks
    assert "is not a regular file" in capsys.readouterr().err


def test_a_partial_last_line_is_moved_aside_never_deleted(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "1", "--seeds", "0", "--epochs", "1",
            "--checkpoints", "1", "--no-progress", "--out", str(out)]
    assert runner.main(argv) == 0
    results = out / "results.jsonl"
    whole = results.read_bytes()
    with open(results, "ab") as f:
        f.write(b'{"key": "cut by a kill", "sta')
    assert runner.main(argv) == 0
    assert "moved a partial last line" in capsys.readouterr().err
    assert results.read_bytes() == whole
    assert (out / "results.jsonl.partial").read_bytes() == b'{"key": "cut by a kill", "sta\n'
