"""Published references, committed bands and ``python -m condense verify`` (DESIGN §7)."""
from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from condense.__main__ import main as cli
from condense.references import (CONFIGS, Reference, ReferenceError, all_expectations, band, judge, load_expectations,
                                 load_published)
from condense.verify import check, freeze, load_rows

ROOT = Path(__file__).resolve().parents[1]

ENTRY = """
[[reference]]
key = "x"
method = "random"
dataset = "cifar10"
ipc = 10
arch = "convnet"
protocol = { name = "dc", preset = "quick" }
mean = 26.0
std = 1.2
n = 100
source = { paper = "P", table = "Table 1", id = "arXiv:0" }
"""


def _ref(**kw) -> Reference:
    base = dict(key="k", method="random", dataset="cifar10", ipc=10, arch="convnet",
                protocol={"name": "dc", "preset": "quick"}, mean=26.0, std=1.2, n=100,
                source={"paper": "P", "table": "T", "id": "I"})
    return Reference(**{**base, **kw})


def _run(argv, cwd=ROOT) -> tuple[int, str]:
    buf = io.StringIO()
    import os
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with redirect_stdout(buf):
            code = cli(argv)
    finally:
        os.chdir(old)
    return code, buf.getvalue()


def test_published_file_loads_and_cites_every_entry():
    refs = load_published()
    keys = {r.key for r in refs}
    assert {"dc/random/cifar10/ipc10", "anchor/dc/cifar10/ipc10", "anchor/dsa/cifar10/ipc10", "anchor/dm/cifar10/ipc10",
            "anchor/mtt/cifar10/ipc10", "anchor/datm/cifar10/ipc10", "rs2/cifar10/fraction0.1",
            "mirage/nci1/gcn"} <= keys
    anchors = {r.method: (r.mean, r.std) for r in refs if r.key.startswith("anchor/")}
    assert anchors == {"dc": (44.9, 0.5), "dsa": (52.1, 0.5), "dm": (48.9, 0.6), "mtt": (65.3, 0.7), "datm": (66.8, 0.2)}
    for r in refs:
        assert r.source["paper"] and r.source["table"] and r.source["id"]
        assert r.std is not None or r.second_hand  # a figure without a std is a quoted one


def test_band_is_two_combined_stds_or_the_papers_tolerance():
    ref = _ref()
    assert band(ref, 0.5) == pytest.approx(2 * math.sqrt(1.2 ** 2 + 0.5 ** 2))
    assert band(_ref(tolerance=1.0), 5.0) == 1.0
    assert band(_ref(std=None), 1.0) is None
    p = {"name": "dc", "preset": "quick", "epochs": 300}
    edge = 2 * math.sqrt(1.2 ** 2)  # three equal runs: our std 0
    assert judge(ref, p, [26.0 + edge] * 3).status == "in band"
    v = judge(ref, p, [26.0 + edge + 0.01] * 3)
    assert v.status == "out of band" and v.delta == pytest.approx(edge + 0.01)
    assert judge(ref, p, [24.0, 26.0, 28.0]).status == "in band"  # our spread widens the band


def test_fields_older_records_lack_read_as_the_protocols_defaults():
    import dataclasses

    from condense.protocols import Protocol
    from condense.references import LATER_FIELDS
    defaults = {f.name: f.default for f in dataclasses.fields(Protocol)}
    assert all(defaults[k] == v for k, v in LATER_FIELDS.items())


def test_non_comparable_protocols_are_labelled_never_compared():
    ref = _ref(protocol={"name": "dc", "preset": "quick", "epochs": 300})
    v = judge(ref, {"name": "dc", "preset": "paper", "epochs": 1000}, [90.0])
    assert v.status == "not comparable" and "preset 'quick' vs 'paper'" in v.why and "epochs 300 vs 1000" in v.why
    v = judge(_ref(approximates="DC augments MNIST"), {"name": "dc", "preset": "quick"}, [26.0])
    assert v.status == "not comparable" and v.why == "protocol differs: DC augments MNIST"
    # a bf16 student only approximates the paper's fp32 one; an older record without the field is fp32
    fp32 = _ref(protocol={"name": "dc", "precision": "fp32"})
    v = judge(fp32, {"name": "dc", "precision": "bf16"}, [26.0])
    assert v.status == "not comparable" and "precision 'fp32' vs 'bf16'" in v.why
    assert judge(fp32, {"name": "dc"}, [26.0]).status == "in band"
    v = judge(_ref(std=None), {"name": "dc", "preset": "quick"}, [30.0])
    assert v.status == "not comparable" and v.delta == pytest.approx(4.0) and "no std" in v.why


@pytest.mark.parametrize("edit, expect", [
    (("mean = 26.0", "meen = 26.0"), r"refs\.toml:9: \[\[reference\]\] 1: unknown key 'meen' \(did you mean 'mean'\?\)"),
    (("std = 1.2\n", ""), r"refs\.toml:2: \[\[reference\]\] 1: missing key 'std'"),
    (("ipc = 10", "ipc = \"ten\""), r"refs\.toml:6: .*ipc must be an integer"),
    (("n = 100", "n = 0"), r"refs\.toml:11: .*n must be an integer >= 1"),
    (("mean = 26.0", "mean = nan"), r"refs\.toml:9: .*mean must be a finite number"),
    (("protocol = { name = \"dc\", preset = \"quick\" }", "protocol = \"dc\""), r"refs\.toml:8: .*protocol must be a table"),
    (("source = { paper = \"P\", table = \"Table 1\", id = \"arXiv:0\" }", "source = { paper = \"P\" }"),
     r"refs\.toml:12: .*source must be a table with paper, table, id"),
    (("mean = 26.0", "mean = 26.0\nmean = 27.0"), r"refs\.toml: not valid TOML"),
])
def test_a_typo_gets_one_line_naming_the_key_and_the_line(tmp_path, edit, expect):
    f = tmp_path / "refs.toml"
    f.write_text(ENTRY.replace(*edit, 1))
    with pytest.raises(ReferenceError, match=expect) as e:
        load_published(f)
    assert "\n" not in str(e.value)
    code, _ = _run(["verify", "--results", str(ROOT / "results" / "dc-random-reference"), "--references", str(f)])
    assert code == 1


def test_duplicate_keys_and_stray_tables_are_refused(tmp_path):
    f = tmp_path / "refs.toml"
    f.write_text(ENTRY + ENTRY)
    with pytest.raises(ReferenceError, match=r"refs\.toml:15: \[\[reference\]\] 2: duplicate key 'x'"):
        load_published(f)
    f.write_text(ENTRY + "\n[other]\na = 1\n")
    with pytest.raises(ReferenceError, match="unknown top-level key 'other'"):
        load_published(f)


def test_committed_results_lie_in_their_bands():
    """`verify --results results/`: the CI check on the committed records (no training)."""
    code, out = _run(["verify", "--results", "results"])
    lines = out.splitlines()
    assert code == 0, "\n".join(x for x in lines if x.startswith("OUT OF BAND"))
    assert not any(x.startswith("OUT OF BAND") for x in lines)
    # every committed figure found the row it was frozen from
    suite_keys = {e.key for e in all_expectations()}
    missing = [x for x in lines if x.split()[2:3] and x.split()[2].rstrip(":") in suite_keys and "no record" in x]
    assert not missing, missing
    assert any(x.startswith("IN BAND") and "dc/random/cifar10/ipc10:" in x and "[results/dc-random-reference]" in x
               for x in lines)
    assert lines[-1].endswith("not comparable") and " 0 out of band" in lines[-1]


def test_every_reference_configuration_is_a_runnable_sweep_with_bands():
    from benchmarks.sweep.spec import sweep_specs
    files = sorted(CONFIGS.glob("*.toml"))
    assert len(files) >= 7
    for f in files:
        assert load_expectations(f), f
        assert sweep_specs(["--config", str(f)]), f  # [[expect]] is left to verify


def test_a_moved_number_is_caught(tmp_path):
    """A committed band and a result that moved out of it: exit 1, with Δ and the band."""
    src = ROOT / "results" / "dc-random-reference" / "results.jsonl"
    rows = load_rows([src])
    frozen = tmp_path / "ref.toml"
    frozen.write_text(freeze(rows).replace(str(rows[0].folder), str(tmp_path)))
    moved = tmp_path / "results.jsonl"
    recs = [json.loads(x) for x in src.read_text().splitlines()]
    for r in recs:
        if r["dataset"] == "cifar10" and r["ipc"] == 10:
            r["acc"] -= 3.0
    moved.write_text("".join(json.dumps(r) + "\n" for r in recs))
    verdicts = check(load_rows([moved]), [], load_expectations(frozen))
    by = {v.ref.key: v for v, _ in verdicts}
    bad = [k for k, v in by.items() if v.status == "out of band"]
    assert len(bad) == 1 and "cifar10/random/ipc10" in bad[0]
    assert by[bad[0]].delta == pytest.approx(-3.0)
    assert sum(v.status == "in band" for v in by.values()) == len(by) - 1


def test_a_rerun_under_new_code_replaces_the_older_numbers_in_its_row(tmp_path):
    """A cell rerun under a new code identity is checked on the new records only, as the leaderboard
    shows it: pooling both would count a seed twice and blend old code into the band."""
    src = ROOT / "results" / "dc-random-reference" / "results.jsonl"
    recs = [json.loads(x) for x in src.read_text().splitlines()]
    cell = [r for r in recs if r["dataset"] == "cifar10" and r["ipc"] == 10]
    newer = []
    for r in cell:
        r2 = json.loads(json.dumps(r))
        r2["acc"] += 5.0
        r2["code"] = {**(r.get("code") or {}), "evaluator": "0" * 16}
        r2["created_utc"] = "2099-01-01T00:00:00Z"
        newer.append(r2)
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cell + newer))
    (row,) = load_rows([tmp_path / "results.jsonl"])
    assert len(row.records) == len(cell) and {r["code"]["evaluator"] for r in row.records} == {"0" * 16}
    assert sorted(r["acc"] for r in row.records) == sorted(r["acc"] + 5.0 for r in cell)


def test_leaderboard_rows_show_the_published_band(tmp_path):
    from benchmarks.report import build
    md = build([ROOT / "results" / "dc-random-reference"], tmp_path)
    assert "published (band)" in md
    for block in md.split("\n\n"):  # every row has exactly the header's cells
        rows = [line for line in block.splitlines() if line.startswith("| ")]
        if rows:
            widths = {line.replace("\\|", "").count("|") for line in rows}
            assert len(widths) == 1, block
    assert "published: 26.0 ± 1.2 — in band (Δ +1.1, band ±2.9)" in md
    assert "published: 95.1 ± 0.9 — protocol differs: DC augments MNIST" in md
    csv_text = (tmp_path / "leaderboard.csv").read_text()
    assert "published_status" in csv_text and "in band" in csv_text
    assert "published: 26.0 ± 1.2" in (tmp_path / "leaderboard.html").read_text()


def test_verify_config_runs_the_sweep_and_checks_its_bands(tmp_path):
    """`verify CONFIG` end to end on the embedded digits: one band it meets, one it cannot."""
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("""datasets = ["digits"]
methods = ["random"]
ipc = [1]
seeds = [0]
epochs = 5
checkpoints = 2
no_progress = true

[[expect]]
key = "wide"
method = "random"
dataset = "digits"
ipc = 1
arch = "convnet"
protocol = { name = "dc", preset = "quick" }
mean = 50.0
std = 40.0
n = 1
source = { results = "nowhere" }

[[expect]]
key = "impossible"
method = "random"
dataset = "digits"
ipc = 1
arch = "convnet"
protocol = { name = "dc", preset = "quick" }
mean = 150.0
std = 0.0
n = 1
source = { results = "nowhere" }
""")
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "condense", "verify", str(cfg), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(x.startswith("IN BAND") and " wide:" in x for x in lines), done.stdout
    assert any(x.startswith("OUT OF BAND") and " impossible:" in x for x in lines), done.stdout
    assert (out / "results.jsonl").exists()


def test_verify_refuses_bad_arguments(tmp_path):
    code, _ = _run(["verify"])
    assert code == 1
    code, _ = _run(["verify", "--results", str(tmp_path / "missing")])
    assert code == 1


def test_a_single_run_is_frozen_without_a_band_and_never_fails_a_rerun(tmp_path):
    """One record has no spread: freezing it writes std "not given", so a rerun that differs is shown as not
    comparable instead of out of a zero-width band."""
    src = ROOT / "results" / "dc-random-reference" / "results.jsonl"
    recs = [json.loads(x) for x in src.read_text().splitlines()]
    one = [r for r in recs if r["dataset"] == "cifar10" and r["ipc"] == 10][:1]
    single = tmp_path / "results.jsonl"
    single.write_text(json.dumps(one[0]) + "\n")
    frozen = tmp_path / "ref.toml"
    frozen.write_text(freeze(load_rows([single])))
    assert 'std = "not given"' in frozen.read_text() and "n = 1" in frozen.read_text()
    one[0]["acc"] += 0.5
    single.write_text(json.dumps(one[0]) + "\n")
    (v, _), = check(load_rows([single]), [], load_expectations(frozen))
    assert v.status == "not comparable"
