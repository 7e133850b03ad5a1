"""Graph-classification datasets from the TU collection, through ``torch_geometric``.

Raw files are read from the data root (which may be read-only) and copied into
``$CONDENSE_CACHE/tu/<NAME>/raw`` so torch_geometric can write its processed files beside them.
Splits are a fixed class-stratified 80/10/10 (test, then val, drawn with ``SPLIT_SEED``).
Graphs without node features get a one-hot node degree, the usual convention (e.g. IMDB-BINARY).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset

from .._paths import cache_dir, data_roots, download_allowed
from ._common import SPLIT_SEED, check_split, content_hash, derived_fingerprint, not_found, stratified_holdout

VAL_FRACTION = 0.1
TEST_FRACTION = 0.1

KNOWN_TU = ("MUTAG", "PROTEINS", "NCI1", "ENZYMES", "PTC_MR", "IMDB-BINARY", "DD")


class GraphDataset(InMemoryDataset):
    """One split of a TU dataset, carrying the same metadata as :class:`ImageDataset`."""

    kind = "graphs"

    def __init__(self, graphs: list[Data], *, name: str, split: str, classes: tuple[str, ...],
                 fingerprint: str, source: str, split_info: dict, positions=None):
        super().__init__(None)
        self.positions = torch.as_tensor(positions if positions is not None else range(len(graphs)), dtype=torch.long)
        self._data, self.slices = self.collate(graphs)
        self.name = name
        self.split = split
        self.classes = classes
        self.fingerprint = fingerprint
        self.source = source
        self.split_info = split_info

    def __repr__(self) -> str:
        return (f"GraphDataset({self.name!r}, split={self.split!r}, n={len(self)}, "
                f"classes={len(self.classes)}, node_features={self.num_node_features}, "
                f"edge_features={self.num_edge_features}, source={self.source!r})")

    @property
    def labels(self) -> torch.Tensor:
        return self._data.y.view(-1).long()

    @property
    def num_classes(self) -> int:  # fixed by the full dataset, not by the labels in this split
        return len(self.classes)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)


def _find_raw(name: str, roots: list[Path]) -> Path | None:
    for r in roots:
        for cand in (r / "TUDataset" / name / "raw", r / name / "raw"):
            if (cand / f"{name}_A.txt").is_file():
                return cand
    return None


def _mirror_raw(raw: Path, name: str) -> Path:
    """Copy the raw text files into the writable cache; returns the TUDataset root there."""
    root = cache_dir("tu")
    dest = root / name / "raw"
    dest.mkdir(parents=True, exist_ok=True)
    for f in raw.iterdir():
        if f.is_file():
            d = dest / f.name
            if not d.exists() or d.stat().st_size != f.stat().st_size:
                tmp = d.with_suffix(d.suffix + ".tmp")
                shutil.copyfile(f, tmp)
                tmp.replace(d)
    return root


def _tu_full(name: str, root, download) -> tuple[list[Data], str, str, int]:
    from torch_geometric.datasets import TUDataset

    roots = data_roots(root)
    raw = _find_raw(name, roots)
    if raw is not None:
        tu_root, source = _mirror_raw(raw, name), "TU Dortmund raw text"
    elif download_allowed(download):
        tu_root, source = cache_dir("tu"), "TU Dortmund (downloaded by torch_geometric)"
    else:
        looked = [f"{r}/TUDataset/{name}/raw" for r in roots] + [f"{r}/{name}/raw" for r in roots]
        note = ""
        if name not in KNOWN_TU:
            from .images import IMAGE_DATASETS

            note = f"it is not an image dataset ({', '.join(IMAGE_DATASETS)}), so it was taken as a TU graph dataset"
        raise not_found(name, looked, note=note, how=
                        f"put the TU raw files ({name}_A.txt, {name}_graph_indicator.txt, ...) under "
                        "<root>/TUDataset/<NAME>/raw/; set CONDENSE_DATA or pass root=, or allow "
                        "downloading with download=True / CONDENSE_DOWNLOAD=1 (image dataset names "
                        "are listed by `python -m condense datasets`)")
    ds = TUDataset(str(tu_root), name, use_node_attr=True, use_edge_attr=True)
    d = ds._data
    parts = [d.edge_index.numpy(), d.y.numpy()] + [ds.slices[k].numpy() for k in sorted(ds.slices)]
    if d.x is not None:
        parts.append(d.x.numpy())
    if d.edge_attr is not None:
        parts.append(d.edge_attr.numpy())
    fingerprint = content_hash(name, *parts)
    graphs = [ds[i] for i in range(len(ds))]
    num_classes = int(d.y.max()) + 1
    if d.x is None or d.x.numel() == 0:
        graphs = _one_hot_degree(graphs)
        source += ", one-hot degree node features"
    for g in graphs:
        g.x = g.x.float()
        if g.edge_attr is not None:
            g.edge_attr = g.edge_attr.float()
    return graphs, fingerprint, source, num_classes


def _one_hot_degree(graphs: list[Data]) -> list[Data]:
    from torch_geometric.utils import degree

    degs = [degree(g.edge_index[0], g.num_nodes, dtype=torch.long) for g in graphs]
    top = int(max(int(d.max()) if d.numel() else 0 for d in degs))
    for g, d in zip(graphs, degs):
        g.x = torch.nn.functional.one_hot(d, top + 1).float()
    return graphs


def graph_split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """The fixed stratified 80/10/10 split: test drawn first, val from the rest, both seeded."""
    n = len(labels)
    test = stratified_holdout(labels, max(1, round(TEST_FRACTION * n)), seed=SPLIT_SEED)
    rest = np.setdiff1d(np.arange(n), test)
    val = rest[stratified_holdout(labels[rest], max(1, round(VAL_FRACTION * n)), seed=SPLIT_SEED + 1)]
    if split == "test":
        return test
    if split == "val":
        return val
    return np.setdiff1d(rest, val)


def load_graph_dataset(name: str, split: str, root=None, download=None) -> GraphDataset:
    check_split(split)
    graphs, fp, source, num_classes = _tu_full(name, root, download)
    labels = np.array([int(g.y) for g in graphs])
    idx = graph_split_indices(labels, split)
    spec = {"split": split, "rule": "stratified 80/10/10", "seed": SPLIT_SEED}
    info = {**spec, "total": len(graphs), "size": int(len(idx))}
    return GraphDataset([graphs[i] for i in idx], name=name, split=split,
                        classes=tuple(str(c) for c in range(num_classes)),
                        fingerprint=derived_fingerprint(fp, spec), source=source, split_info=info,
                        positions=idx)


def graph_availability(name: str, root=None) -> dict:
    raw = _find_raw(name, data_roots(root))
    if raw is None:
        return {"available": False, "source": None, "where": None}
    return {"available": True, "source": "TU Dortmund raw text", "where": str(raw)}
