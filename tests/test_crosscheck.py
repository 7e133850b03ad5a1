"""The crosscheck harness against fake "official" checkouts: one that trains exactly as the suite does,
one with an injected deviation (another learning rate): the first agrees on every probe, the second's
deviation is found and named. Substitutions are exact and refused in one line when they no longer apply."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.crosscheck.__main__ import crosscheck, main
from benchmarks.crosscheck.harness import CrosscheckError, Probe, Substitution, judge, patched_copy
from benchmarks.crosscheck.mirage import parse, parse_supports, substitutions_for

from .conftest import REPO

FAKE_UTILS = '''
import os
import time
from scipy.ndimage.interpolation import rotate as scipyrotate
import torch
from torch.utils.data import Dataset

LR = {lr}


class TensorDataset(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def get_network(model, channel, num_classes, im_size=(32, 32)):
    torch.random.manual_seed(int(time.time() * 1000) % 100000)
    return int(os.environ["CROSSCHECK_SEED"])      # the fake trains through the suite: its seed is all it needs


def evaluate_synset(it_eval, seed, images_train, labels_train, testloader, args):
    """Train as the suite's dc protocol does (or at another rate), through the suite's own evaluator."""
    from condense.data import load_dataset
    from condense.evaluate import evaluate
    from condense.methods import create_condenser
    from condense.protocols import get_protocol

    s = create_condenser("random").condense(load_dataset("digits", "train"), 10, seed=0)
    p = get_protocol("dc", "quick", epochs=args.epoch_eval_train, checkpoints=1, lr=LR)
    res = evaluate(s, load_dataset("digits", "test"), arch="convnet", protocol=p, seeds=[seed])
    return None, 0.0, res.runs[0].final_acc / 100.0
'''


def _fake(root: Path, lr: float) -> Path:
    root.mkdir(parents=True)
    (root / "utils.py").write_text(textwrap.dedent(FAKE_UTILS.format(lr=lr)))
    (root / "networks.py").write_text("")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "add", "."], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fake"],
                   check=True)
    return root


def _options(**kw):
    return SimpleNamespace(**{"set": None, "seeds": [0, 1], "epochs": 4, "say": lambda m: None, **kw})


def test_an_identical_official_agrees_and_an_injected_deviation_is_found_and_named(tmp_path):
    same = _fake(tmp_path / "same", 0.01)
    probes_same, inputs = crosscheck("dc-evaluator", same, _options())
    assert [p.verdict for p in probes_same] == ["agrees"] * 3, [(p.name, p.detail) for p in probes_same]
    assert inputs["commit"] != "unknown (not a git checkout)" and len(inputs["commit"]) == 40
    off = _fake(tmp_path / "off", 0.05)
    probes_off, _ = crosscheck("dc-evaluator", off, _options())
    named = [p.name for p in probes_off if p.verdict == "differs"]
    assert "optimizer (step created, lr, momentum, weight decay)" in named
    assert "optimizer steps" not in named


def test_substitutions_are_exact_and_a_stale_one_is_one_line(tmp_path):
    root = tmp_path / "official"
    root.mkdir()
    (root / "a.py").write_text("x = 1\nx = 1\n")
    ok = Substitution("one", "a.py", "x = 1", "x = 2", "why", count=2)
    with patched_copy(root, [ok], say=lambda m: None) as copy:
        assert (copy / "a.py").read_text() == "x = 2\nx = 2\n"
    assert (root / "a.py").read_text() == "x = 1\nx = 1\n"      # the checkout itself is never touched
    stale = Substitution("stale", "a.py", "y = 1", "y = 2", "why")
    with pytest.raises(CrosscheckError, match="substitution stale: a.py holds the text to replace 0 time"):
        with patched_copy(root, [stale], say=lambda m: None):
            pass
    with pytest.raises(CrosscheckError, match="no such folder"):
        with patched_copy(tmp_path / "nowhere", [], say=lambda m: None):
            pass


def test_statistical_probes_need_a_difference_beyond_tolerance_and_chance():
    assert judge(Probe("a", [90.0, 91.0, 92.0], [90.5, 91.5, 92.5], kind="stat", tolerance=1.0)).verdict == "agrees"
    assert judge(Probe("b", [90.0, 90.2, 90.1], [80.0, 80.2, 80.1], kind="stat", tolerance=1.0)).verdict == "differs"
    assert judge(Probe("c", [95.5] * 10, [95.5], kind="stat", tolerance=1.0)).verdict == "agrees"
    assert judge(Probe("d", [1, 2], [1, 2])).verdict == "agrees" and judge(Probe("e", [1], [2])).verdict == "differs"


def test_the_mirage_adapter_reads_the_official_scripts_output_and_patches_its_settings():
    out = "\n".join(["step  0", "classid 0", "count 12", "classid 1", "count 52",
                     *[f"seed {s} Epoch: 300,train_our_acc 0.2  Train Acc: 0.9, val_acc: 0.9, Running Test Acc: 0.95 , "
                       f"Actual test acc: 0.{950 + s}" for s in range(1, 11)],
                     "\\ RESULTS", " ::::::threshold_array  [9, 32]", " gnn_type  GCNConv"])
    (b,) = parse(out)
    assert b["supports"] == (9, 32) and b["tree_sets"] == [12, 52] and b["gnn"] == "GCNConv"
    assert b["auc"] == pytest.approx([95.1, 95.2, 95.3, 95.4, 95.5, 95.6, 95.7, 95.8, 95.9, 96.0])
    subs = {s.name: s for s in substitutions_for("MUTAG", ((9, 32),), ("gcn",))}
    assert "{0:29\n" in subs["supports"].new and "num_steps=1" in subs["steps"].new
    assert subs["gnns"].new == "for gnn_type in ['GCNConv']:"


def test_mirage_support_steps_from_the_command_line_follow_the_official_scripts_stride():
    assert parse_supports(["440/570", "420/550"]) == ((440, 570), (420, 550))
    with pytest.raises(CrosscheckError, match="'440-570' is not a support step"):
        parse_supports(["440-570"])
    with pytest.raises(CrosscheckError, match="lowers both supports by 20 a step; 400/550 does not follow 440/570"):
        parse_supports(["440/570", "400/550"])


def test_the_command_line_names_an_unknown_method_in_one_line(tmp_path, capsys):
    assert main(["nope", "--official", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no crosscheck adapter for 'nope'; available: mirage, dc-evaluator") and err.count("\n") == 1
    done = subprocess.run([sys.executable, "-m", "benchmarks.crosscheck", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--official" in done.stdout


def test_docs_list_every_substitution_of_every_adapter():
    from benchmarks.crosscheck.__main__ import ADAPTERS, adapter

    text = (REPO / "docs" / "crosscheck.md").read_text()
    names = {s.name for m in ADAPTERS for s in adapter(m).SUBSTITUTIONS}
    names |= {s.name for s in substitutions_for("MUTAG", ((9, 32),), ("gcn",))}
    assert all(f"| `{n}` |" in text for n in names), sorted(n for n in names if f"| `{n}` |" not in text)


def test_the_written_command_names_the_checkout_not_its_place():
    from benchmarks.crosscheck.__main__ import shown_command

    cmd = shown_command(["mirage", "--official", "/home/x/src/Mirage", "--datasets", "MUTAG"], "frigategnn/Mirage")
    assert cmd == ("python -m benchmarks.crosscheck mirage --official <your checkout of frigategnn/Mirage> "
                   "--datasets MUTAG")


def test_the_official_mirage_script_runs_on_a_copy_of_the_raw_files_and_reports_progress(tmp_path):
    """A stand-in for the official script: it lists the raw files it was given and prints what the
    official one prints per seed; its lines come back as progress and its output is parsed."""
    from benchmarks.crosscheck.mirage import run_official

    copy, raw = tmp_path / "copy", tmp_path / "raw"
    (copy / "NCI1").mkdir(parents=True)
    raw.mkdir()
    (raw / "MUTAG_A.txt").write_text("1, 2\n")
    (copy / "NCI1" / "graph-nci-finalize-reduce-curr.py").write_text(textwrap.dedent("""
        import os
        print("files", sorted(os.listdir("data/TUDataset/MUTAG/raw")))
        print("classid 0"); print("count 3"); print("classid 1"); print("count 4")
        for s in (1, 2):
            print(f"seed {s} Epoch: 0,train_our_acc 0.5  Train Acc: 0.5, val_acc: 0.5, Running Test Acc: 0.5 , Actual test acc: 0.5")
            print(f"seed {s} Epoch: 300,train_our_acc 0.9  Train Acc: 0.9, val_acc: 0.9, Running Test Acc: 0.9 , Actual test acc: 0.9{s}")
        print(" ::::::threshold_array  [9, 32]"); print(" gnn_type  GCNConv")
    """))
    said = []
    out = run_official(copy, "MUTAG", raw, timeout=60, say=said.append)
    assert "files ['MUTAG_A.txt']" in out and (raw / "MUTAG_A.txt").exists()
    assert len(said) == 5 and said[1].startswith("official MUTAG: seed 1 Epoch: 300")
    (b,) = parse(out)
    assert b["auc"] == pytest.approx([91.0, 92.0]) and b["tree_sets"] == [3, 4]
    (copy / "NCI1" / "graph-nci-finalize-reduce-curr.py").write_text("raise SystemExit('no ogb here')\n")
    shutil.rmtree(copy / "NCI1" / "data")
    with pytest.raises(CrosscheckError, match="the official script failed on MUTAG: no ogb here"):
        run_official(copy, "MUTAG", raw, timeout=60, say=said.append)
