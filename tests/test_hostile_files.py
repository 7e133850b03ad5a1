"""Hostile set files, third pass: every integer dataset under every NumPy integer dtype, paths posing as
dataset names, malformed fingerprints, a graph subset whose ``ipc`` was edited down, and a bad
``CONDENSE_MAX_SET_BYTES``. Each file is built as an attacker would: written, edited with plain h5py,
resealed. Each ends in a one-line ``FormatError`` or a correct load, never a traceback."""
from __future__ import annotations

import json

import h5py
import pytest
import torch

import condense
from condense.format import FormatError, SyntheticSet, pack_graphs, reseal

from .hostile.forgers import composing_set, retype
from .test_store import graph_set, image_set, schedule_set

INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def _subset_graphs(ipc: int = 2) -> SyntheticSet:
    from torch_geometric.data import Data

    graphs = [Data(x=torch.ones(2, 3), edge_index=torch.tensor([[0], [1]]), y=torch.tensor([c])) for c in (0, 0, 1)]
    return SyntheticSet(kind="graphs", method="random", ipc=ipc, num_classes=2, class_names=["0", "1"],
                        source_dataset="MUTAG", source_fingerprint="c" * 32, seed=0, graphs=pack_graphs(graphs))


CASES = [("images", image_set, "labels"), ("schedule", schedule_set, "indices"),
         ("graphs", graph_set, "graphs/edge_index"), ("graphs", graph_set, "graphs/node_ptr"),
         ("graphs", graph_set, "graphs/edge_ptr"), ("graphs", graph_set, "graphs/labels"),
         ("graphs", graph_set, "graphs/node_degree"), ("graphs", graph_set, "graphs/tree_ptr")]


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("kind, make, where", CASES, ids=[c[2] for c in CASES])
def test_every_integer_dataset_under_every_integer_dtype_loads_right_or_is_refused_in_one_line(
        tmp_path, kind, make, where, dtype):
    s = make()
    path = condense.save(s, tmp_path / "x.h5")
    retype(path, where, dtype)
    signed = dtype.startswith("int")
    if not signed:
        with pytest.raises(FormatError) as e:
            condense.load(path)
        msg = str(e.value)
        assert str(path) in msg and f"/{where}" in msg and dtype in msg and "\n" not in msg
        return
    back = condense.load(path)   # a signed type is the same numbers
    part, _, key = where.partition("/")
    got = back.graphs[key] if part == "graphs" else getattr(back, part)
    want = s.graphs[key] if part == "graphs" else getattr(s, part)
    assert torch.equal(got.long(), want.long())


NAMES = [("source_dataset", v, "source_dataset must be a dataset name")
         for v in ["../../../../tmp/EVIL", "/etc/passwd", "a/b", "..", "x" * 200, "", "sp ace"]]
FINGERPRINTS = [("source_fingerprint", v, "source_fingerprint must be 32 lowercase hex digits")
                for v in ["", "f", "F" * 32, "g" * 32, "a" * 31, "a" * 64]]


@pytest.mark.parametrize("attr, value, why", NAMES + FINGERPRINTS)
def test_names_and_fingerprints_have_the_form_the_spec_names(tmp_path, attr, value, why):
    """A source name is a name, never a path; a fingerprint is 32 lowercase hex digits: refused in a
    file edited with h5py and resealed, and refused before a write."""
    path = condense.save(image_set(), tmp_path / "x.h5")
    with h5py.File(path, "a") as f:
        f.attrs[attr] = value
    reseal(path)
    with pytest.raises(FormatError, match=why):
        condense.load(path)
    with pytest.raises(FormatError, match=why):
        condense.save(image_set().with_meta(**{attr: value}), tmp_path / "y.h5")
    assert not (tmp_path / "y.h5").exists()


def test_a_graph_subset_proves_its_ipc_from_its_graphs(tmp_path):
    path = condense.save(_subset_graphs(ipc=2), tmp_path / "g.h5")
    assert condense.load(path).ipc == 2
    with h5py.File(path, "a") as f:
        f.attrs["ipc"] = 1    # two graphs of class 0 claim to be IPC 1
    reseal(path)
    with pytest.raises(FormatError, match=r"ipc is 1 but class 0 \(0\) has 2 graphs"):
        condense.load(path)


@pytest.mark.parametrize("value", ["abc", "1e9", "-5", "0", "1.5"])
def test_a_bad_set_size_limit_is_an_error_not_a_silent_default(tmp_path, monkeypatch, value):
    path = condense.save(image_set(), tmp_path / "x.h5")
    monkeypatch.setenv("CONDENSE_MAX_SET_BYTES", value)
    with pytest.raises(FormatError, match="CONDENSE_MAX_SET_BYTES=.*must be a positive whole number"):
        condense.load(path)
    monkeypatch.setenv("CONDENSE_MAX_SET_BYTES", "1000000000")
    assert len(condense.load(path)) == len(image_set())


def test_unsigned_labels_do_not_reach_torch_from_the_command_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    path = condense.save(image_set(), tmp_path / "x.h5")
    retype(path, "labels", "uint32")
    r = subprocess.run([sys.executable, "-m", "condense", "inspect", str(path)], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "uint32" in r.stderr


def test_composed_instances_count_against_the_limit_before_any_tensor_is_built(tmp_path, monkeypatch):
    """Sixty-four images of 64 classes in one init batch with 64 compensators compose 64 + 64 × 64
    instances from 128 stored items: counted from the indices and refused before composing (a 100 KB
    limit stands in for the default 8 GiB)."""
    c = 64
    s = composing_set(c, side=4)
    path = condense.save(s, tmp_path / "c.h5")
    assert condense.load(path).num_instances() == c + c * c
    monkeypatch.setenv("CONDENSE_MAX_SET_BYTES", str(100_000))
    with pytest.raises(FormatError, match=r"composing 4,160 instances would take 266,240 bytes \(.* with the stored parts\), over the 100,000-byte"):
        condense.load(path)


def test_evaluate_refuses_a_set_made_from_another_copy_of_its_data_unless_told(tmp_path, digits):
    import subprocess
    import sys
    from pathlib import Path

    from condense.methods import create_condenser

    s = create_condenser("random").condense(digits["train"], 1, seed=0)
    path = condense.save(s.with_meta(source_fingerprint="0" * 32), tmp_path / "x.h5")
    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "condense", "evaluate", str(path), "--seeds", "0", "--set", "epochs=5"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, timeout=600)
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "0" * 32 in r.stderr and digits["train"].fingerprint in r.stderr
    r = subprocess.run(cmd + ["--accept-other-source", "--json", str(tmp_path / "r.json")], capture_output=True,
                       text=True, cwd=repo, timeout=600)
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["accepted_other_source"] == {"set": "0" * 32, "local": digits["train"].fingerprint}


def test_inspect_is_one_pass_and_quiet_when_its_reader_stops(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from condense.__main__ import _class_pixel_stats

    s = image_set(n_per_class=5, classes=3)
    counts, means, stds = _class_pixel_stats(s, chunk=4)   # chunks cut across classes
    x = s.float_images()
    for c in range(3):
        xc = x[s.labels == c]
        assert counts[c] == 5 and means[c] == pytest.approx(float(xc.mean()), abs=1e-5)
        assert stds[c] == pytest.approx(float(xc.std()), abs=1e-5)
    k = 5000   # 5,000 class lines: more than a pipe holds, so the reader stops the writer mid-way
    big = SyntheticSet(kind="images", method="random", ipc=1, num_classes=k, class_names=[str(i) for i in range(k)],
                       source_dataset="toy", source_fingerprint="f" * 32, seed=0,
                       images=torch.zeros(k, 1, 2, 2, dtype=torch.uint8), labels=torch.arange(k), mean=(0.5,), std=(0.5,))
    path = condense.save(big, tmp_path / "x.h5")
    r = subprocess.run(f"'{sys.executable}' -m condense inspect '{path}' | head -2", shell=True, capture_output=True,
                       text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert r.stdout.splitlines()[0] == str(path) and r.stderr == ""   # no "Broken pipe" error


@pytest.mark.parametrize("name", ["../../etc", "/etc", "a/b", "..", "", "x" * 200])
def test_the_data_loaders_take_names_never_paths(name):
    from condense.data import availability, load_dataset

    with pytest.raises(ValueError, match="a name, not a path"):
        load_dataset(name, "train")
    with pytest.raises(ValueError, match="a name, not a path"):
        availability(name)


def test_graph_counts_count_against_the_limit_from_the_header(tmp_path, monkeypatch):
    """Many tiny graphs cost little to store and much to unpack (a PyG object each): counted from the
    declared shape before anything is read."""
    from torch_geometric.data import Data

    n = 1000
    graphs = [Data(x=torch.ones(1, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), y=torch.tensor([i % 2]))
              for i in range(n)]
    s = SyntheticSet(kind="graphs", method="random", ipc=n // 2, num_classes=2, class_names=["0", "1"],
                     source_dataset="MUTAG", source_fingerprint="c" * 32, seed=0, graphs=pack_graphs(graphs))
    path = condense.save(s, tmp_path / "g.h5")
    monkeypatch.setenv("CONDENSE_MAX_SET_BYTES", "2000000")
    with pytest.raises(FormatError, match=r"1,000 graphs at 2,560 bytes each included\), over the 2,000,000-byte"):
        condense.load(path)
    monkeypatch.setenv("CONDENSE_MAX_SET_BYTES", "3000000")
    assert len(condense.load(path)) == n


def test_a_schedule_proves_its_budget_from_its_rounds(tmp_path):
    """An RS2 schedule of 6 items a round is IPC 3 over 2 classes; edited to IPC 1 and resealed, its rounds
    give it away. In the selection-ratio mode the fraction bounds a round instead."""
    path = condense.save(schedule_set(), tmp_path / "s.h5")   # ipc 3, 2 classes, rounds of 6
    with h5py.File(path, "a") as f:
        f.attrs["ipc"] = 1
    reseal(path)
    with pytest.raises(FormatError, match=r"a round holds 6 items, more than ipc × classes = 1 × 2 = 2"):
        condense.load(path)
    ratio = schedule_set().with_meta(method_config={"fraction": 0.05})   # 5 % of 40 items, + 1 a class: 4
    with pytest.raises(FormatError, match=r"more than fraction 0.05 of 40 items allows \(4\)"):
        condense.save(ratio, tmp_path / "r.h5")
    assert condense.load(condense.save(schedule_set().with_meta(method_config={"fraction": 0.1}),
                                       tmp_path / "ok.h5")).indices.shape == (5, 6)


# ----------------------------------------------------------------------------- summaries' byte budget


@pytest.fixture(scope="module")
def mirage_summary(tmp_path_factory):
    from condense.data import load_dataset
    from condense.methods import create_condenser

    train = load_dataset("MUTAG", "train")
    s = create_condenser("mirage").condense(train, 4, seed=0)
    return condense.save(s, tmp_path_factory.mktemp("mirage") / "m.h5"), train


def _edit_extra(path, **changes):
    with h5py.File(path, "a") as f:
        x = json.loads(f.attrs["extra"])
        x.update(changes)
        for k in [k for k, v in changes.items() if v is None]:
            del x[k]
        f.attrs["extra"] = json.dumps(x)
    reseal(path)


def test_a_summary_proves_its_byte_budget_from_its_graphs(tmp_path, mirage_summary):
    """A Mirage summary made at IPC 4 and edited to IPC 1 (resealed) claims a budget that 1 random graph per
    class cannot hold; a class share edited down gives the class away; a summary that names no budget is
    refused, and one sized by thresholds must carry them."""
    import shutil

    src, _ = mirage_summary
    s = condense.load(src)
    assert s.storage_bytes["graphs"] <= s.extra["budget_bytes"]
    path = shutil.copy(src, tmp_path / "ipc.h5")
    with h5py.File(path, "a") as f:
        f.attrs["ipc"] = 1
    reseal(path)
    with pytest.raises(FormatError, match=r"budget_bytes [\d,]+ exceed what ipc 1 random graphs per class take"):
        condense.load(path)

    path = shutil.copy(src, tmp_path / "share.h5")
    _edit_extra(path, class_budget_bytes=[100, 100])
    with pytest.raises(FormatError, match=r"class 0 \(.*\) takes [\d,]+ bytes, over its share of 100"):
        condense.load(path)

    for changes, why in [({"mode": None}, "a graph summary proves its budget"),
                         ({"mode": "thresholds"}, "a summary sized by thresholds needs method_config.thresholds")]:
        path = shutil.copy(src, tmp_path / "mode.h5")
        _edit_extra(path, **changes)
        with pytest.raises(FormatError, match=why):
            condense.load(path)


def test_a_summarys_random_graph_bytes_is_checked_against_the_local_source(tmp_path, mirage_summary):
    """Edited down to IPC 1 with random_graph_bytes inflated 4× to match, the file is self-consistent; the
    evaluator recomputes the mean graph's bytes from the local training split and refuses it."""
    import shutil

    from condense.data import load_dataset
    from condense.evaluate import check_source, evaluate

    src, train = mirage_summary
    check_source(condense.load(src), train)    # the genuine set passes
    path = shutil.copy(src, tmp_path / "rgb.h5")
    rgb = condense.load(src).extra["random_graph_bytes"]
    with h5py.File(path, "a") as f:
        f.attrs["ipc"] = 1
    _edit_extra(path, random_graph_bytes=4 * rgb)
    forged = condense.load(path)
    with pytest.raises(ValueError, match=r"random_graph_bytes is [\d.]+, but one MUTAG/train graph takes [\d.]+"):
        evaluate(forged, load_dataset("MUTAG", "test"), arch="gcn", protocol="graph", seeds=[0], source=train)


def test_evaluate_refuses_a_set_from_another_source_unless_accepted(tmp_path, mirage_summary):
    from condense.data import load_dataset
    from condense.evaluate import evaluate

    src, train = mirage_summary

    class Other:   # the same graphs under another fingerprint: another copy of the data
        fingerprint = "0" * 32

        def __iter__(self):
            return iter(train)

    other = Other()
    s, test = condense.load(src), load_dataset("MUTAG", "test")
    with pytest.raises(ValueError, match=f"MUTAG/train with fingerprint {s.source_fingerprint}, but the local "
                                         f"MUTAG/train has {'0' * 32}; accept_other_source"):
        evaluate(s, test, arch="gcn", protocol="graph", seeds=[0], source=other)
    res = evaluate(s, test, arch="gcn", protocol="graph", seeds=[0], source=other, accept_other_source=True,
                   preset="quick")
    assert res.runs[0].extra["accepted_other_source"] == {"set": s.source_fingerprint, "local": "0" * 32}
