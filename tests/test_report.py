"""The report reads records alone: it builds a leaderboard where torch cannot be imported, from the
time-to-accuracy each record stored."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NO_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'torch_geometric', 'kornia', 'h5py'):
            raise ImportError(f'{name} is blocked: the report must not need it')
sys.meta_path.insert(0, Block())
from benchmarks.report import build
md = build([sys.argv[1]], None)
assert 'torch' not in sys.modules, 'the report imported torch'
print(md)
"""


def test_a_leaderboard_builds_without_torch_and_equals_the_one_with_it():
    folder = REPO / "results" / "main-job"
    r = subprocess.run([sys.executable, "-c", NO_TORCH, str(folder)], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    from benchmarks.report import build

    with_torch = build([folder], None)
    assert "| random" in r.stdout and "| full" in r.stdout
    assert "not checked against today's code" in r.stdout   # says what it could not do

    def tables(md):  # without torch, rows are not labelled by code identity: compare everything else
        return [re.sub(r" ⟨[^⟩]*⟩", "", line) for line in md.splitlines() if line and "not checked against" not in line]
    assert tables(r.stdout.strip()) == tables(with_torch.strip())


def test_the_report_reads_the_stored_tta_and_recomputes_only_for_older_records():
    from benchmarks.report.tables import record_tta

    curve = [{"acc": 50.0, "train_seconds": 1.0, "cpu_seconds": 2.0}, {"acc": 70.0, "train_seconds": 2.0,
                                                                         "cpu_seconds": 4.0}]
    old = {"curve": curve, "condense_seconds": 0.5, "teacher_seconds": 0.0, "condense_cpu_seconds": 1.0}
    assert record_tta(old, 60.0, "wall") == 2.5 and record_tta(old, 60.0, "cpu") == 5.0
    stored = {**old, "tta": {"60": 2.4999}, "tta_no_teacher": {"60": 2.4999}, "tta_cpu": {"60": 4.9},
              "tta_cpu_no_teacher": {"60": 4.9}}
    assert record_tta(stored, 60.0, "wall") == 2.4999 and record_tta(stored, 60.0, "cpu") == 4.9
    partial = {**old, "tta": {"60": 2.4999}}   # not all four stored: every column from the curve
    assert record_tta(partial, 60.0, "wall") == 2.5


def test_each_table_says_what_it_compares_and_explains_rows_that_look_broken():
    """A soft-label method under hard labels below random gets the HLR note (not above random, not under a
    soft-label protocol); under a soft-label protocol, a method below random-kd at its IPC gets one; a graph row below chance points Mirage to its probe; every protocol the suite
    registers says what its table compares."""
    from benchmarks.report import notes
    from condense.protocols import PROTOCOLS, get_protocol

    def table(proto, rows):
        return {"protocol_dict": get_protocol(proto).to_dict(), "rows": rows, "notes": []}

    dc = table("dc", [{"method": "random", "ipc": 10, "mean": 89.0, "soft_labels": False},
                      {"method": "cvdd", "ipc": 10, "mean": 16.5, "soft_labels": True},
                      {"method": "infer", "ipc": 10, "mean": 91.0, "soft_labels": True}])
    kd = table("kd", [{"method": "random", "ipc": 10, "mean": 89.0, "soft_labels": False},
                      {"method": "infer", "ipc": 10, "mean": 20.0, "soft_labels": True}])
    fkd = table("fkd", [{"method": "random-kd", "ipc": 10, "mean": 91.7, "soft_labels": True},
                        {"method": "infer", "ipc": 10, "mean": 82.2, "soft_labels": True},
                        {"method": "cvdd", "ipc": 10, "mean": 93.0, "soft_labels": True},
                        {"method": "sre2l++", "ipc": 1, "mean": 12.0, "soft_labels": True}])
    graph = table("graph", [{"method": "mirage", "ipc": 10, "mean": 68.4, "roc_auc": 33.3},
                            {"method": "random", "ipc": 10, "mean": 75.4, "roc_auc": 79.5}])
    tables = {"a": dc, "b": kd, "c": graph, "d": fkd}
    notes.annotate(tables)
    # below random-kd at the same IPC under a soft-label protocol: a note; above it, or no random-kd row at
    # that IPC (sre2l++ at IPC 1), none
    assert len(fkd["notes"]) == 1 and fkd["notes"][0].startswith("infer at IPC 10 (82.20 % against random-kd's 91.70")
    assert len(dc["notes"]) == 1 and dc["notes"][0].startswith("cvdd at IPC 10 (16.50 %") and "HLR" in dc["notes"][0]
    assert kd["notes"] == []
    assert len(graph["notes"]) == 1 and "33.3 is below chance" in graph["notes"][0]
    assert notes.MIRAGE_PROBE in graph["notes"][0] and (REPO / notes.MIRAGE_PROBE).is_file()
    assert "Hard labels" in dc["compares"] and "T = 30.0" in kd["compares"]
    assert all(notes.compares(get_protocol(name).to_dict()) for name in PROTOCOLS)
