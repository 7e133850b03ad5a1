"""The HDF5 synthetic-set format: round trips, plain-h5py readability, bytes, atomicity, bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import condense
from condense.store import FORMAT_VERSION, FormatError, SyntheticSet, pack_graphs, reseal

from .conftest import REPO


def image_set(n_per_class=3, classes=4, encoding="uint8", soft=False, shape=(3, 8, 8)) -> SyntheticSet:
    g = torch.Generator().manual_seed(0)
    n = n_per_class * classes
    if encoding == "uint8":
        images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    elif encoding == "unit":
        images = torch.rand(n, *shape, generator=g).to(torch.float16)
    else:  # standardized: pixels in [0, 1] mapped by mean 0.5, std 0.25
        images = ((torch.rand(n, *shape, generator=g) - 0.5) / 0.25).float()
    return SyntheticSet(
        kind="images", method="test", ipc=n_per_class, num_classes=classes,
        class_names=[f"c{i}" for i in range(classes)], source_dataset="toy", source_fingerprint="f" * 32,
        seed=3, method_config={"lr": 0.1}, images=images, image_encoding=encoding,
        mean=(0.5,) * shape[0], std=(0.25,) * shape[0], labels=torch.arange(classes).repeat_interleave(n_per_class),
        soft_labels=torch.randn(n, classes, generator=g) if soft else None,
        soft_label_policy="static" if soft else None, condense_seconds=1.5, teacher_seconds=0.5,
        deviations=("scaled iterations",), extra={"note": "x"})


def schedule_set(rounds=5, n=6, source_size=40, fingerprint="a" * 32) -> SyntheticSet:
    idx = torch.stack([torch.randperm(source_size, generator=torch.Generator().manual_seed(r))[:n] for r in range(rounds)])
    return SyntheticSet(kind="subset-schedule", method="rs2", ipc=3, num_classes=2, class_names=["a", "b"],
                        source_dataset="toy", source_fingerprint=fingerprint, seed=0, indices=idx,
                        source_size=source_size)


def graph_set() -> SyntheticSet:
    from torch_geometric.data import Data

    graphs = []
    for i, n in enumerate((3, 4, 2)):
        ei = torch.tensor([[k, k + 1] for k in range(n - 1)]).t().long()
        graphs.append(Data(x=torch.eye(n, 5), edge_index=ei, edge_attr=torch.ones(ei.shape[1], 2), y=torch.tensor([i % 2])))
    parts = pack_graphs(graphs, root_mask=torch.tensor([1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=torch.bool),
                        node_degree=torch.tensor([1, 2, 1, 1, 2, 2, 1, 1, 1], dtype=torch.int16),
                        frequency=torch.tensor([5.0, 2.0, 1.0]), tree_codes=["a", "b", "c", "d"],
                        tree_ptr=torch.tensor([0, 1, 3, 4]))
    return SyntheticSet(kind="graphs", method="mirage", ipc=0, num_classes=2, class_names=["0", "1"],
                        source_dataset="toy", source_fingerprint="b" * 32, seed=0, graphs=parts)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("encoding", ["uint8", "unit", "standardized"])
@pytest.mark.parametrize("soft", [False, True])
def test_image_round_trip_bit_equal(tmp_path, encoding, soft):
    s = image_set(encoding=encoding, soft=soft)
    path = condense.save(s, tmp_path / "x.h5")
    t = condense.load(path)
    assert t.images.dtype == s.images.dtype and torch.equal(t.images, s.images)
    assert torch.equal(t.labels, s.labels)
    if soft:
        assert torch.equal(t.soft_labels, s.soft_labels) and t.soft_label_policy == "static"
    assert t.metadata() == {**s.metadata(), "created_utc": t.created_utc} and t.created_utc == s.created_utc
    assert t.deviations == ("scaled iterations",) and t.method_config == {"lr": 0.1}


def test_schedule_and_graph_round_trip(tmp_path):
    s = schedule_set()
    t = condense.load(condense.save(s, tmp_path / "s.h5"))
    assert torch.equal(t.indices, s.indices) and t.source_size == 40
    g = graph_set()
    u = condense.load(condense.save(g, tmp_path / "g.h5"))
    for k, v in g.graphs.items():
        assert (u.graphs[k] == v) if isinstance(v, list) else torch.equal(u.graphs[k], v), k
    data = u.dataset()
    assert len(data) == 3 and data[1].num_nodes == 4 and data[1].root_mask.tolist() == [True, False, False, False]
    assert data[2].edge_attr.shape == (1, 2) and float(data[0].frequency) == 5.0
    assert data[1].node_degree.tolist() == [1, 2, 2, 1] and g.storage_bytes["graphs"] == u.storage_bytes["graphs"]


@pytest.mark.parametrize("bad, why", [(torch.tensor([1, 2, 1, 1, 2, 2, 1, 1, -1], dtype=torch.int16), "non-negative"),
                                      (torch.ones(9), "integer"), (torch.ones(8, dtype=torch.int16), "one")])
def test_bad_node_degrees_are_refused(tmp_path, bad, why):
    """Degrees feed GCN's normalisation (a negative one would give NaN): one integer >= 0 per node."""
    g = graph_set()
    g.graphs["node_degree"] = bad
    with pytest.raises((FormatError, ValueError), match="node_degree"):
        condense.save(g, tmp_path / "g.h5")


def test_plain_h5py_reads_without_the_library(tmp_path):
    s = image_set(soft=True)
    path = condense.save(s, tmp_path / "x.h5")
    code = (
        "import h5py, json, sys; f = h5py.File(sys.argv[1], 'r');"
        "print(json.dumps({'format': f.attrs['format'], 'version': int(f.attrs['format_version']),"
        "'method': f.attrs['method'], 'shape': list(f['images'].shape), 'labels': f['labels'][()].tolist(),"
        "'bytes': json.loads(f.attrs['storage_bytes']), 'fletcher32': f['images'].fletcher32,"
        "'policy': f['soft_labels'].attrs['policy']}))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path)
    got = json.loads(out.stdout)
    assert got["format"] == "condense.synthetic" and got["version"] == 2 < FORMAT_VERSION  # no replay part: version 2
    assert got["shape"] == [12, 3, 8, 8] and got["labels"] == s.labels.tolist()
    assert got["fletcher32"] is True and got["policy"] == "static"
    assert got["bytes"]["total"] == s.storage_bytes["total"]


def test_storage_bytes_count_each_part():
    s = image_set(n_per_class=5, classes=10, soft=True, shape=(3, 32, 32))
    b = s.storage_bytes
    assert b["images"] == 50 * 3 * 32 * 32  # uint8
    assert b["labels"] == 50 * 8  # int64
    assert b["soft_labels"] == 50 * 10 * 4  # float32
    assert b["total"] == b["images"] + b["labels"] + b["soft_labels"]
    assert schedule_set(rounds=5, n=6).storage_bytes == {"indices": 5 * 6 * 8, "total": 240}


def test_interrupted_write_leaves_no_half_file(tmp_path, monkeypatch):
    import condense.format.write as store

    path = tmp_path / "x.h5"
    condense.save(image_set(), path)
    before = path.read_bytes()

    def boom(f, s):
        f.create_dataset("images", data=np.zeros(3))
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(store, "_write", boom)
    with pytest.raises(KeyboardInterrupt):
        condense.save(image_set(n_per_class=9), path)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"]  # no temporary left behind
    with pytest.raises(KeyboardInterrupt):
        condense.save(image_set(), tmp_path / "new.h5")
    assert not (tmp_path / "new.h5").exists()


def test_killed_writer_process_leaves_no_target(tmp_path):
    code = (
        "import os, signal, torch, condense.format.write as st\n"
        "from tests.test_store import image_set\n"
        "orig = st._write\n"
        "def w(f, s):\n    orig(f, s); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "st._write = w\n"
        f"st.save(image_set(), {str(tmp_path / 'k.h5')!r})\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True)
    assert r.returncode == -9
    assert not (tmp_path / "k.h5").exists()


def test_dataset_in_a_dataloader_with_workers(tmp_path):
    s = image_set(n_per_class=8, soft=True)
    t = condense.load(condense.save(s, tmp_path / "x.h5"))
    loader = torch.utils.data.DataLoader(t.dataset(), batch_size=5, shuffle=True, num_workers=2)
    seen = 0
    for x, y, soft in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8) and soft.shape[1] == 4
        seen += len(y)
    assert seen == len(t)
    x0, y0, _ = t.dataset()[0]
    expect = (s.images[0].float() / 255 - 0.5) / 0.25
    assert torch.allclose(x0, expect) and int(y0) == int(s.labels[0])


def test_resolve_schedule_checks_fingerprint(digits):
    s = schedule_set(source_size=len(digits["train"]), fingerprint=digits["train"].fingerprint)
    rounds = s.resolve(digits["train"])
    assert len(rounds) == 5 and len(rounds[2]) == 6
    assert torch.equal(rounds[2].images, digits["train"].images[s.indices[2]])
    with pytest.raises(FormatError, match="fingerprint"):
        s.resolve(digits["val"])
    with pytest.raises(ValueError, match="resolve"):
        s.dataset()


# ----------------------------------------------------------------------------- bad input


def _mutate(path: Path, fn, seal: bool = True) -> Path:
    """Edit a file with plain h5py; re-seal it so the structural check, not the checksum, speaks."""
    with h5py.File(path, "a") as f:
        fn(f)
    if seal:
        reseal(path)
    return path


def _replace(f, name, data):
    attrs = dict(f[name].attrs)
    del f[name]
    f.create_dataset(name, data=data)
    for k, v in attrs.items():
        f[name].attrs[k] = v


BAD = {
    "missing key": (lambda f: f.__delitem__("labels"), "missing dataset '/labels'"),
    "missing attribute": (lambda f: f.attrs.__delitem__("method"), "missing root attribute 'method'"),
    "unknown version": (lambda f: f.attrs.__setitem__("format_version", 99), "unknown format_version 99"),
    "wrong format": (lambda f: f.attrs.__setitem__("format", "pickle"), "format attribute"),
    "unknown kind": (lambda f: f.attrs.__setitem__("kind", "video"), "unknown kind"),
    "label count mismatch": (lambda f: _replace(f, "labels", np.arange(5)), "labels have shape (5,), expected (12,)"),
    "labels out of range": (lambda f: _replace(f, "labels", np.full(12, 7)), "out of range"),
    "wrong image rank": (lambda f: _replace(f, "images", np.zeros((12, 8, 8), np.uint8)), "N×C×H×W"),
    "NaN pixels": (lambda f: _replace(f, "images", np.full((12, 3, 8, 8), np.nan, np.float32)), None),
    "bad json": (lambda f: f.attrs.__setitem__("method_config", "{not json"), "method_config"),
    "bytes tampered": (lambda f: f.attrs.__setitem__("storage_bytes", json.dumps({"total": 1})), "storage_bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_give_one_line_errors(tmp_path, case):
    fn, expect = BAD[case]
    path = _mutate(condense.save(image_set(), tmp_path / "x.h5"), fn)
    with pytest.raises(FormatError) as e:
        condense.load(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    if expect:
        assert expect in msg


def test_nan_and_inf_values_are_named(tmp_path):
    s = image_set(encoding="standardized")
    for bad in (float("nan"), float("inf")):
        x = s.images.clone()
        x[0, 0, 0, 0] = bad
        path = tmp_path / "n.h5"
        _mutate(condense.save(s, path), lambda f: _replace(f, "images", x.numpy()))
        with pytest.raises(FormatError, match="NaN or Inf"):
            condense.load(path)
    with pytest.raises(FormatError, match="refusing to write.*NaN or Inf"):
        condense.save(s.with_meta(images=x), tmp_path / "never.h5")
    assert not (tmp_path / "never.h5").exists()


def test_soft_label_shape_and_schedule_range(tmp_path):
    s = image_set(soft=True)
    with pytest.raises(FormatError, match="static soft_labels must be 12×4"):
        condense.save(s.with_meta(soft_labels=torch.zeros(12, 3)), tmp_path / "a.h5")
    sch = schedule_set()
    with pytest.raises(FormatError, match="indices out of range"):
        condense.save(sch.with_meta(indices=sch.indices + 100), tmp_path / "b.h5")
    g = graph_set()
    bad = dict(g.graphs, edge_index=g.graphs["edge_index"] + 3)
    with pytest.raises(FormatError, match="outside its graph"):
        condense.save(g.with_meta(graphs=bad), tmp_path / "c.h5")


def test_truncated_and_non_hdf5_files(tmp_path):
    path = condense.save(image_set(n_per_class=20, shape=(3, 32, 32)), tmp_path / "x.h5")
    data = path.read_bytes()
    for cut in (10, len(data) // 3, len(data) - 100):
        p = tmp_path / f"cut{cut}.h5"
        p.write_bytes(data[:cut])
        with pytest.raises(FormatError):
            condense.load(p)
    txt = tmp_path / "notes.h5"
    txt.write_text("hello")
    with pytest.raises(FormatError, match="not a condense synthetic-set file"):
        condense.load(txt)
    with pytest.raises(FormatError, match="no such file"):
        condense.load(tmp_path / "absent.h5")


def test_edits_outside_the_library_are_caught_until_resealed(tmp_path):
    path = condense.save(image_set(), tmp_path / "x.h5")
    _mutate(path, lambda f: f.attrs.__setitem__("method", "renamed"), seal=False)
    with pytest.raises(FormatError, match="checksum mismatch"):
        condense.load(path)
    reseal(path)
    assert condense.load(path).method == "renamed"
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.attrs["format"] = "condense.synthetic"
    with pytest.raises(FormatError, match="without the condense integrity block"):
        condense.load(plain)


def test_checksum_catches_flipped_bytes(tmp_path):
    path = condense.save(image_set(n_per_class=50, shape=(3, 32, 32)), tmp_path / "x.h5")
    with h5py.File(path, "r") as f:
        offset = f["images"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError):
        condense.load(path)


def test_cli_reports_bad_files_without_traceback(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 50)
    for cmd in (["inspect", str(bad)], ["export", str(bad), "--png", str(tmp_path / "png")]):
        r = subprocess.run([sys.executable, "-m", "condense", *cmd], capture_output=True, text=True, cwd=REPO)
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and str(bad) in r.stderr
        assert "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- fuzzing


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "x.h5"
    return condense.save(image_set(soft=True), path).read_bytes()


def _hang(signum, frame):
    raise TimeoutError("reading a mutated file took over 10 s")


def _load_only_format_errors(path: Path) -> None:
    """Only FormatError may escape, and reading must finish (a hang fails the test)."""
    import signal

    old = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(10)
    try:
        condense.load(path)
    except FormatError as e:
        assert "\n" not in str(e)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096))
def test_fuzz_random_bytes(tmp_path, data):
    p = tmp_path / "r.h5"
    p.write_bytes(data)
    _load_only_format_errors(p)


@FUZZ
@given(frac=st.floats(0, 1, exclude_max=True))
def test_fuzz_truncation(tmp_path, good_bytes, frac):
    p = tmp_path / "t.h5"
    p.write_bytes(good_bytes[: int(len(good_bytes) * frac)])
    with pytest.raises(FormatError):
        condense.load(p)


@FUZZ
@given(pos=st.floats(0, 1, exclude_max=True), byte=st.integers(0, 255))
def test_fuzz_byte_flips(tmp_path, good_bytes, pos, byte):
    """Any changed byte, anywhere in the file (the integrity block's padding included), is a
    FormatError; an unchanged one loads."""
    data = bytearray(good_bytes)
    data[int(len(data) * pos)] = byte
    p = tmp_path / "f.h5"
    p.write_bytes(bytes(data))
    if bytes(data) == good_bytes:
        condense.load(p)
        return
    with pytest.raises(FormatError) as e:
        condense.load(p)
    assert "\n" not in str(e.value)


ATTRS = ["format", "format_version", "kind", "method", "method_config", "seed", "ipc", "num_classes",
         "class_names", "source_fingerprint", "storage_bytes", "condense_seconds", "deviations", "extra"]
VALUES = st.one_of(st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=True),
                   st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
                   st.just("[]"), st.just("{}"), st.just('["a"]'), st.just("condense.synthetic"))


@FUZZ
@given(key=st.sampled_from(ATTRS), value=VALUES)
def test_fuzz_mutated_attributes(tmp_path, good_bytes, key, value):
    p = tmp_path / "m.h5"
    p.write_bytes(good_bytes)
    _mutate(p, lambda f: f.attrs.__setitem__(key, value))
    _load_only_format_errors(p)


def test_packed_graphs_keep_the_formats_bytes_and_unpack_to_the_same_graphs():
    """PyG's collate packs the graphs part without its index increment: each graph's edges count from its
    own first node, node_ptr/edge_ptr are the slices; separate gives the graphs back."""
    from torch_geometric.data import Data

    from condense.format import unpack_graphs

    g1 = Data(x=torch.ones(3, 2), edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]), y=torch.tensor([1]),
              edge_attr=torch.full((3, 1), 0.5))
    g2 = Data(x=torch.zeros(2, 2), edge_index=torch.tensor([[0, 1], [1, 0]]), y=torch.tensor(0),
              edge_attr=torch.full((2, 1), 2.0))
    p = pack_graphs([g1, g2], root_mask=torch.tensor([1, 0, 0, 1, 0], dtype=torch.bool))
    assert p["edge_index"].tolist() == [[0, 1, 2, 0, 1], [1, 2, 0, 1, 0]]      # local, not incremented
    assert p["node_ptr"].tolist() == [0, 3, 5] and p["edge_ptr"].tolist() == [0, 3, 5]
    assert p["labels"].tolist() == [1, 0] and p["x"].dtype == torch.float32 and p["edge_index"].dtype == torch.int64
    back = unpack_graphs(p)
    for a, b in zip(back, [g1, g2]):
        assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
        assert torch.equal(a.edge_attr, b.edge_attr) and int(a.y) == int(b.y)
    assert back[0].root_mask.tolist() == [True, False, False] and back[1].root_mask.tolist() == [True, False]
    empty = pack_graphs([])
    assert empty["node_ptr"].tolist() == [0] and unpack_graphs(empty) == []
