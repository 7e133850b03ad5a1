"""Structure-only reference rows: fitted on training graphs only, scored like every row, written once per
data copy by the sweep, shown under every graph table, and the rows that do not beat node-count marked."""
from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from condense.data.graphs import GraphDataset
from condense.structure import STRUCTURE_BASELINES, fit_and_score, structure_key, structure_records


def _graphs(sizes_and_labels, split="train"):
    graphs = []
    for n, y in sizes_and_labels:
        ei = torch.tensor([[k, k + 1] for k in range(n - 1)] + [[k + 1, k] for k in range(n - 1)]).t().long()
        x = torch.eye(3)[[k % 3 if y == 0 else 2 for k in range(n)]]
        graphs.append(Data(x=x, edge_index=ei.reshape(2, -1), y=torch.tensor([y])))
    return GraphDataset(graphs, name="SIZES", split=split, classes=("0", "1"), fingerprint="e" * 32,
                        source="hand-made", split_info={})


def test_node_count_fits_sign_and_threshold_on_training_graphs_only():
    """Class 1 graphs are the small ones: the sign flips, the threshold sits between the classes, and a test
    split with its labels swapped scores 0 % and ROC-AUC 0 (nothing is fitted on test)."""
    train = _graphs([(n, 1) for n in (3, 4, 5, 6)] + [(n, 0) for n in (9, 10, 11, 12)])
    test = _graphs([(4, 1), (5, 1), (10, 0), (11, 0)], "test")
    r = fit_and_score("node-count", train, test)
    assert r["fitted"]["sign"] == -1.0 and 6 < r["fitted"]["threshold"] < 9
    assert (r["acc"], r["roc_auc"], r["train_acc"]) == (100.0, 100.0, 100.0)
    swapped = _graphs([(4, 0), (5, 0), (10, 1), (11, 1)], "test")
    r2 = fit_and_score("node-count", train, swapped)
    assert r2["fitted"] == r["fitted"] and (r2["acc"], r2["roc_auc"]) == (0.0, 0.0)


def test_size_and_bag_of_atoms_are_logistic_regressions_on_their_features():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    train = _graphs([(int(rng.integers(3, 12)), int(rng.integers(0, 2))) for _ in range(60)])
    test = _graphs([(int(rng.integers(3, 12)), int(rng.integers(0, 2))) for _ in range(30)], "test")
    for name, feats in (("size", lambda d: [[g.num_nodes, g.edge_index.shape[1] / 2] for g in d]),
                        ("bag-of-atoms", lambda d: [g.x.double().sum(0).tolist() for g in d])):
        xtr, xte = np.array(feats(train)), np.array(feats(test))
        ytr, yte = train.labels.numpy(), test.labels.numpy()
        mean, std = xtr.mean(0), xtr.std(0)
        std[std == 0] = 1
        want = LogisticRegression(max_iter=5000).fit((xtr - mean) / std, ytr).predict((xte - mean) / std)
        assert fit_and_score(name, train, test)["acc"] == pytest.approx(100 * (want == yte).mean())
    with pytest.raises(ValueError, match="unknown structure baseline 'edges'"):
        fit_and_score("edges", train, test)


def test_structure_records_skip_the_keys_already_written():
    train, test = _graphs([(3, 0), (4, 0), (9, 1), (10, 1)]), _graphs([(3, 0), (9, 1)], "test")
    recs = structure_records(train, test)
    assert [r["method"] for r in recs] == list(STRUCTURE_BASELINES)
    assert all(r["storage_bytes"] == 0 and r["key"] == structure_key("SIZES", r["method"], "e" * 32) for r in recs)
    assert structure_records(train, test, have={r["key"] for r in recs}) == []


def _record(method, seed, acc, auc, source="f" * 32):
    return {"key": f"{method}-{seed}", "status": "ok", "dataset": "SIZES", "method": method, "ipc": 1, "seed": seed,
            "arch": "gcn", "protocol": {"name": "graph", "version": 5, "preset": "quick", "epochs": 100,
                                        "augment": None, "select": "val-auc"},
            "acc": acc, "targets": [60.0], "tta": {"60": 1.0}, "condense_seconds": 0.1, "teacher_seconds": 0.0,
            "train_seconds": 2.0, "storage_bytes": {"total": 100}, "touches_full_data": False,
            "source_fingerprint": source, "curve": [{"train_seconds": 1.0, "acc": acc}], "run_extra": {"roc_auc": auc}}


def test_graph_tables_show_the_structure_rows_and_mark_rows_that_do_not_beat_node_count(tmp_path):
    """A row whose ROC-AUC CI reaches down to node-count's is marked ‡ in Markdown, HTML and CSV; one clearly
    above is not; the structure table sits under the table of its own dataset copy only."""
    from benchmarks.report import build

    run = tmp_path / "run"
    run.mkdir()
    recs = [_record("mirage", s, 70.0, auc) for s, auc in enumerate((60.0, 62.0, 64.0))]
    recs += [_record("random", s, 80.0, auc) for s, auc in enumerate((90.0, 91.0, 92.0))]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    structure = [{"kind": "structure", "status": "ok", "key": f"structure/SIZES/{m}", "dataset": "SIZES",
                  "method": m, "source_fingerprint": "f" * 32, "acc": 75.0, "roc_auc": 65.0, "train_acc": 70.0}
                 for m in STRUCTURE_BASELINES]
    structure.append({**structure[0], "key": "other-copy", "source_fingerprint": "0" * 32, "acc": 1.0})
    (run / "structure.jsonl").write_text("".join(json.dumps(r) + "\n" for r in structure) + "not json\n")
    md = build([run], run)
    assert re.search(r"\| 1 \| mirage[^|]* ‡ \|", md) and re.search(r"\| 1 \| random[^|‡]*\|", md)
    assert "| node-count | 75.00 | 65.0 | 70.0 | 0 B (no set) |" in md and "| 1.00 |" not in md
    assert "does not beat `node-count`" in md
    page = (run / "leaderboard.html").read_text()
    assert re.search(r"<span>mirage[^<]* ‡</span>", page) and "<td>bag-of-atoms</td>" in page
    rows = list(csv.DictReader(io.StringIO((run / "leaderboard.csv").read_text())))
    assert {r["method"]: r["beats_node_count"] for r in rows} == {"mirage": "False", "random": "True"}


def test_a_graph_sweep_writes_the_structure_rows_once_and_its_leaderboard_shows_them(tmp_path):
    """A MUTAG sweep fits the three references on MUTAG's training split into structure.jsonl; run again
    (resumed), it adds none; an image sweep writes none. ``full`` trains at the table's step budget and,
    labelled, at its protocol's own (every training graph, every epoch)."""
    from benchmarks import run_sweep

    out = tmp_path / "g"
    kw = {"datasets": ["MUTAG"], "methods": ["random", "full"], "ipc": [1], "seeds": [0], "archs": ["gcn"],
          "epochs": 2, "checkpoints": 1, "no_progress": True, "out": str(out)}
    got = run_sweep(kw)
    steps = {(r["method"], r["ipc"]): r["plan"]["steps"] for r in got}
    assert steps == {("random", 1): 2, ("full", 1): 2, ("full", 0): 2 * 5}   # 150 graphs in batches of 32
    assert "| all | full (its protocol's own budget)" in (out / "leaderboard.md").read_text()
    lines = (out / "structure.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [r["method"] for r in recs] == list(STRUCTURE_BASELINES) and {r["dataset"] for r in recs} == {"MUTAG"}
    assert all(r["train_size"] == 150 and r["test_size"] == 19 for r in recs)
    run_sweep({**kw, "seeds": [1]})
    assert (out / "structure.jsonl").read_text().splitlines() == lines
    assert "| node-count |" in (out / "leaderboard.md").read_text()
    img = tmp_path / "i"
    got = run_sweep({"datasets": ["digits"], "methods": ["random", "full"], "ipc": [1], "seeds": [0], "epochs": 2,
                     "checkpoints": 1, "no_progress": True, "out": str(img)})
    assert not (img / "structure.jsonl").exists() and {r["ipc"] for r in got} == {1}   # images: 'own' when asked
