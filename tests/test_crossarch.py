"""The cross-architecture table: one column per architecture that trained the same sets under the same
configuration, the change from ConvNet's column, and nothing from another budget or configuration."""
from __future__ import annotations

import re
import subprocess
import sys

from benchmarks.report.crossarch import cross_arch
from benchmarks.report.records import load_records
from benchmarks.report.tables import aggregate

from .conftest import REPO


def _sweep(out, *extra):
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--datasets", "digits", "--methods", "random",
                           "--ipc", "2", "--seeds", "0", "1", "--checkpoints", "1", "--no-progress", "--out", str(out),
                           *extra], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_columns_are_architectures_of_one_configuration(tmp_path):
    out = tmp_path / "out"
    _sweep(out, "--archs", "convnet", "mlp", "--epochs", "4")
    _sweep(out, "--archs", "mlp", "--epochs", "6")           # another budget: its own table, never a column
    ok, _ = load_records([out])
    (x,) = cross_arch(aggregate(ok, "wall"))
    assert x["archs"] == ["convnet", "mlp"] and x["ipc"] == 2 and "4 epochs" in x["protocol"]
    (row,) = x["rows"]
    conv, mlp = row["convnet"], row["mlp"]
    assert conv["n"] == mlp["n"] == 2 and mlp["steps"] == conv["steps"]
    board = (out / "leaderboard.md").read_text()
    section = board.split("## Cross-architecture · digits · IPC 2", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"\| random \| ([\d.]+) ± [\d.]+ \(2\); \d+ MiB \| ([\d.]+) ± [\d.]+ \(2\), ([+-][\d.]+); \d+ MiB \|", section)
    assert m, section
    assert abs(float(m.group(2)) - float(m.group(1)) - float(m.group(3))) < 0.011
    assert "convnet: norm instancenorm, pooling avgpool, width 128; mlp: its defaults" in section
    assert "Cross-architecture" in (out / "leaderboard.html").read_text()


def test_an_architecture_that_cannot_take_the_input_is_refused_before_training(tmp_path):
    """DC's LeNet takes 28×28 and 32×32 only: on the 8×8 digits the sweep stops with one line before it
    condenses or trains anything (before, the cell trained nothing and was recorded as failed)."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--datasets", "digits", "--methods", "random",
                           "--archs", "convnet", "lenet", "--ipc", "1", "--seeds", "0", "--no-progress", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2  # the sweep's usage errors
    assert done.stderr.strip().splitlines() == [
        "error: --archs lenet on digits (1×8×8): DC's evaluation family takes 28×28 or 32×32 images, got 8×8"]
    assert not out.exists()


def test_the_sweep_sets_the_students_precision():
    """--precision bf16 trains every student under bfloat16 autocast (a protocol field, so its rows form
    their own tables); an unknown precision is refused by the spec."""
    import pytest

    from benchmarks.sweep.plan import Planner
    from benchmarks.sweep.spec import SweepSpec

    assert Planner(SweepSpec(precision="bf16")).protocol("images", "digits").precision == "bf16"
    assert Planner(SweepSpec()).protocol("images", "digits").precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        SweepSpec(precision="fp8")
    from benchmarks.report.tables import protocol_label
    p = Planner(SweepSpec(precision="bf16")).protocol("images", "digits").to_dict()
    assert protocol_label(p).endswith("no aug, bf16)")  # every heading says so
    assert "fp32" not in protocol_label({**p, "precision": "fp32"})
