"""Dataset loaders: counts, shapes, class balance, splits, fingerprints, read-only roots, errors."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from condense.data import DatasetNotFoundError, load_dataset, stratified_holdout

from .conftest import need


def _check_splits(name, official_train, test_count, root=None):
    tr, va, te = (load_dataset(name, s, root=root) for s in ("train", "val", "test"))
    assert len(tr) + len(va) == official_train
    assert len(te) == test_count
    assert set(tr.positions.tolist()).isdisjoint(va.positions.tolist())
    assert sorted(tr.positions.tolist() + va.positions.tolist()) == list(range(official_train))
    assert tr.images.dtype == torch.uint8 and tr.labels.dtype == torch.int64
    assert len({tr.fingerprint, va.fingerprint, te.fingerprint}) == 3
    return tr, va, te


def test_digits_embedded(digits):
    tr, va, te = digits["train"], digits["val"], digits["test"]
    assert (len(tr), len(va), len(te)) == (1293, 144, 360)
    assert tr.shape == (1, 8, 8) and tr.num_classes == 10
    assert int(tr.images.max()) == 255 and tr.source.startswith("scikit-learn digits")
    for split in (tr, va, te):  # stratified: every class present in proportion
        counts = split.class_counts()
        assert counts.min() >= 0.09 * len(split) and counts.max() <= 0.115 * len(split)


def test_splits_repeatable_and_fingerprint_stable(digits, fresh_cache):
    again = load_dataset("digits", "val")  # decoded afresh into an empty cache
    assert again.fingerprint == digits["val"].fingerprint
    assert torch.equal(again.positions, digits["val"].positions)
    assert torch.equal(again.images, digits["val"].images)


def test_stratified_holdout_exact_and_seeded():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    a = stratified_holdout(labels, 10, seed=0)
    assert len(a) == 10 and np.array_equal(a, stratified_holdout(labels, 10, seed=0))
    assert np.bincount(labels[a]).tolist() == [5, 3, 2]
    assert not np.array_equal(a, stratified_holdout(labels, 10, seed=1))


def test_unknown_split_is_refused(digits):
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("digits", "validation")


def test_mnist_counts_and_balance(data_root):
    need(data_root, "MNIST", "raw")
    tr, va, te = _check_splits("mnist", 60000, 10000)
    assert tr.shape == (1, 28, 28) and len(va) == 5000
    assert te.class_counts().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    full = (tr.class_counts() + va.class_counts()).tolist()
    assert full == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert abs(tr.mean[0] - 0.1307) < 1e-3 and abs(tr.std[0] - 0.3081) < 1e-3


def test_cifar10_jpeg_copy(data_root):
    need(data_root, "cifar10", "train")
    import time

    tr, va, te = _check_splits("cifar10", 50000, 10000)
    assert tr.shape == (3, 32, 32) and tr.source == "ImageFolder JPEG copy"
    assert tr.class_counts().tolist() == [4500] * 10 and va.class_counts().tolist() == [500] * 10
    assert te.class_counts().tolist() == [1000] * 10
    assert tr.classes[0] == "airplane" and tr.classes[-1] == "truck"
    assert np.allclose(tr.mean, (0.4913, 0.4821, 0.4465), atol=2e-3)
    t0 = time.perf_counter()
    again = load_dataset("cifar10", "train")  # from the decoded cache
    assert time.perf_counter() - t0 < 5.0  # generous bound for a loaded CI machine; ~0.5 s here
    assert again.fingerprint == tr.fingerprint


@pytest.mark.parametrize("name,total,counts", [("MUTAG", 188, [63, 125]), ("PROTEINS", 1113, [663, 450]),
                                               ("NCI1", 4110, [2053, 2057])])
def test_tu_graph_sets(data_root, name, total, counts):
    need(data_root, "TUDataset", name)
    splits = [load_dataset(name, s) for s in ("train", "val", "test")]
    assert sum(len(s) for s in splits) == total
    assert [len(s) for s in splits] == [total - 2 * round(0.1 * total), round(0.1 * total), round(0.1 * total)]
    pos = [set(s.positions.tolist()) for s in splits]
    assert not (pos[0] & pos[1] or pos[0] & pos[2] or pos[1] & pos[2])
    assert (sum(s.class_counts() for s in splits)).tolist() == counts
    for s in splits:  # stratified: class shares within 2 points of the whole set's
        share = s.class_counts().float() / len(s)
        assert torch.allclose(share, torch.tensor(counts) / total, atol=0.03)
    again = load_dataset(name, "test")
    assert again.fingerprint == splits[2].fingerprint and torch.equal(again.positions, splits[2].positions)
    assert splits[0][0].x.dtype == torch.float32


def test_mutag_is_embedded_and_identical_to_the_prepared_copy(tmp_path, fresh_cache):
    """With no data root at all MUTAG still loads (the main job's graph default), from the package;
    where a prepared copy exists, both give the same graphs and the same fingerprint."""
    empty = tmp_path / "empty"
    empty.mkdir()
    splits = {s: load_dataset("MUTAG", s, root=empty) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [150, 19, 19]
    assert "embedded" in splits["train"].source
    assert sum(splits[s].class_counts() for s in splits).tolist() == [63, 125]
    from condense.data import availability

    assert availability("MUTAG", empty)["available"]
    prepared = os.environ.get("CONDENSE_DATA")
    if prepared and (Path(prepared) / "TUDataset" / "MUTAG").is_dir():
        real = load_dataset("MUTAG", "test", root=prepared)
        assert real.fingerprint == splits["test"].fingerprint and "embedded" not in real.source


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_read_only_root(data_root, tmp_path, fresh_cache):
    need(data_root, "TUDataset", "MUTAG")
    need(data_root, "MNIST", "raw")
    ro = tmp_path / "readonly"
    shutil.copytree(data_root / "TUDataset" / "MUTAG", ro / "TUDataset" / "MUTAG")
    (ro / "MNIST" / "raw").mkdir(parents=True)
    for f in (data_root / "MNIST" / "raw").glob("t10k*"):
        shutil.copy(f, ro / "MNIST" / "raw" / f.name)
    for f in (data_root / "MNIST" / "raw").glob("train*"):
        os.symlink(f, ro / "MNIST" / "raw" / f.name)
    for p in sorted(ro.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    ro.chmod(0o555)
    before = _snapshot(ro)
    try:
        g = load_dataset("MUTAG", "train", root=ro)
        m = load_dataset("mnist", "test", root=ro)
    finally:
        for p in [ro, *ro.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
    assert len(g) == 150 and len(m) == 10000
    assert _snapshot(ro) == before, "loading wrote into the data root"
    assert list((fresh_cache / "tu").glob("MUTAG-*.npz")), "parsed graph arrays belong in CONDENSE_CACHE"


def test_missing_dataset_error_names_everything(tmp_path, fresh_cache, monkeypatch):
    monkeypatch.delenv("CONDENSE_DOWNLOAD", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("cifar10", "train", root=empty)
    msg = str(e.value)
    assert "'cifar10'" in msg and str(empty) in msg and "CONDENSE_DATA" in msg and "download" in msg
    assert "\n" not in msg
    with pytest.raises(DatasetNotFoundError, match="'PROTEINS'.*TUDataset/PROTEINS/raw"):
        load_dataset("PROTEINS", "train", root=empty)
    with pytest.raises(DatasetNotFoundError, match="not an image dataset"):
        load_dataset("cifar11", "train", root=empty)


def _write_tu(root: Path, name: str, graphs: list[tuple[int, list[tuple[int, int]], int]], node_labels=None):
    """Write a TU-format dataset: graphs as (num_nodes, undirected edges, label)."""
    raw = root / "TUDataset" / name / "raw"
    raw.mkdir(parents=True)
    a, ind, gl, nl, offset = [], [], [], [], 0
    for gi, (n, edges, y) in enumerate(graphs, start=1):
        ind += [gi] * n
        gl.append(y)
        for u, v in edges:
            a += [(offset + u + 1, offset + v + 1), (offset + v + 1, offset + u + 1)]
        nl += [(node_labels or (lambda k: k % 3))(k) for k in range(n)]
        offset += n
    (raw / f"{name}_A.txt").write_text("\n".join(f"{u}, {v}" for u, v in a) + "\n")
    (raw / f"{name}_graph_indicator.txt").write_text("\n".join(map(str, ind)) + "\n")
    (raw / f"{name}_graph_labels.txt").write_text("\n".join(map(str, gl)) + "\n")
    return raw


def test_featureless_graphs_get_one_hot_degree_and_multiclass(tmp_path, fresh_cache):
    rng = np.random.default_rng(0)
    graphs = []
    for i in range(60):
        n = int(rng.integers(3, 8))
        edges = [(k, k + 1) for k in range(n - 1)] + ([(0, n - 1)] if i % 2 else [])
        graphs.append((n, edges, i % 3))
    _write_tu(tmp_path, "TOY3", graphs)
    tr = load_dataset("TOY3", "train", root=tmp_path)
    assert tr.num_classes == 3 and len(tr.classes) == 3
    assert sorted(tr.class_counts().tolist()) == [16, 16, 16]
    g = tr[0]
    deg = torch.bincount(g.edge_index[0], minlength=g.num_nodes)
    assert g.x.shape[1] == 3  # max degree 2 -> one-hot of width 3
    assert torch.equal(g.x.argmax(1), deg) and torch.all(g.x.sum(1) == 1)
    assert "one-hot degree" in tr.source


def test_an_image_edited_in_place_is_decoded_again(tmp_path, fresh_cache):
    """The decode cache of an ImageFolder is keyed on every file's size and modification time: an
    image rewritten in place (its folders' times put back, as a copy tool would leave them) is read
    again, never served from the cache with its old pixels."""
    from PIL import Image

    from .hostile.forgers import fake_cifar_folder

    root = fake_cifar_folder(tmp_path / "data")
    before = load_dataset("cifar10", "test", root=root)
    img = root / "cifar10" / "test" / "class3" / "0000.jpg"
    folders = [img.parent, img.parent.parent, img.parent.parent.parent]
    times = [(d.stat().st_atime_ns, d.stat().st_mtime_ns) for d in folders]
    Image.fromarray(np.full((32, 32, 3), 250, np.uint8)).save(img)
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    for d, t in zip(folders, times):
        os.utime(d, ns=t)
    after = load_dataset("cifar10", "test", root=root)
    i = int((before.labels == 3).nonzero()[0])
    assert int(before.images[i].float().mean()) < 100 and int(after.images[i].float().mean()) > 200
    assert after.fingerprint != before.fingerprint


def test_graphs_without_features_get_the_one_hot_out_degree_over_the_sets_largest():
    import torch
    from torch_geometric.data import Data

    from condense.data.graphs import _one_hot_degree

    a = Data(edge_index=torch.tensor([[0, 0, 1, 2], [1, 2, 0, 0]]), num_nodes=3)   # degrees 2, 1, 1
    b = Data(edge_index=torch.tensor([[0, 1, 1, 1, 2, 3], [1, 0, 2, 3, 1, 1]]), num_nodes=4)  # 1, 3, 1, 1
    c = Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=2)             # isolated: 0, 0
    out = _one_hot_degree([a, b, c])
    want = [[2, 1, 1], [1, 3, 1, 1], [0, 0]]
    for g, degs in zip(out, want):
        assert g.x.dtype == torch.float32 and g.x.shape == (len(degs), 4)   # 0..3, the largest degree
        assert g.x.argmax(1).tolist() == degs and g.x.sum(1).tolist() == [1.0] * len(degs)


def test_continuous_node_attributes_are_standardised_with_training_statistics(tmp_path, fresh_cache):
    """TU node attributes (raw values in the hundreds) reach a model at zero mean and unit variance over
    the training split's nodes; the validation and test splits take the training statistics; 0/1 label
    columns are untouched; the fingerprint says the features were transformed."""
    rng = np.random.default_rng(0)
    graphs = [(int(rng.integers(3, 8)), [], i % 2) for i in range(50)]
    graphs = [(n, [(k, k + 1) for k in range(n - 1)], y) for n, _, y in graphs]
    raw = _write_tu(tmp_path, "ATTR", graphs)
    n_nodes = sum(n for n, _, _ in graphs)
    attrs = rng.normal(300.0, 40.0, size=n_nodes)
    (raw / "ATTR_node_attributes.txt").write_text("".join(f"{v:.4f}\n" for v in attrs))
    (raw / "ATTR_node_labels.txt").write_text("".join(f"{k % 2}\n" for k in range(n_nodes)))
    tr, te = load_dataset("ATTR", "train", root=tmp_path), load_dataset("ATTR", "test", root=tmp_path)
    x = torch.cat([g.x for g in tr]).double()
    assert x.shape[1] == 3   # the attribute, then the one-hot label
    assert abs(float(x[:, 0].mean())) < 1e-5 and abs(float(x[:, 0].std()) - 1) < 1e-5
    assert set(x[:, 1:].unique().tolist()) == {0.0, 1.0}
    raw_train = np.concatenate([attrs[_node_ids(graphs, i)] for i in tr.positions])
    raw_test = np.concatenate([attrs[_node_ids(graphs, i)] for i in te.positions])
    want = (raw_test - raw_train.mean()) / raw_train.std(ddof=1)
    got = torch.cat([g.x[:, 0] for g in te]).double().numpy()
    assert np.allclose(got, want, atol=1e-4)
    assert "standardised with training statistics" in tr.source


def _node_ids(graphs, i):
    start = sum(n for n, _, _ in graphs[:i])
    return np.arange(start, start + graphs[i][0])
