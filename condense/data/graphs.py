"""Graph-classification datasets from the TU collection, through ``torch_geometric``.

Raw text files are read from the data root (which may be read-only) with torch_geometric's TU
reader. The parsed arrays are cached as a plain ``.npz`` (no pickle: ``allow_pickle=False``) under
``$CONDENSE_CACHE/tu``, keyed by the raw files and checked against their content hash on every
load; an entry that fails to load or to match is rebuilt from the raw files. torch_geometric's own
processed files are never read: its loader falls back to a full unpickle when a safe load fails.
Splits are a fixed class-stratified 80/10/10 (test, then val, drawn with ``SPLIT_SEED``).
Graphs without node features get a one-hot node degree, the usual convention (e.g. IMDB-BINARY).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset, download_url, extract_zip
from torch_geometric.io import read_tu_data
import torch_geometric.transforms as T
from torch_geometric.utils import degree

from .._paths import cache_dir, data_roots, download_allowed
from ._common import (KNOWN_TU, SPLIT_SEED, DatasetError, atomic_save_npz, check_split, content_hash,
                      derived_fingerprint, load_npz, not_found, stat_signature, stratified_holdout, try_cache)
from .images import IMAGE_DATASETS

VAL_FRACTION = 0.1
TEST_FRACTION = 0.1


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


EMBEDDED = Path(__file__).resolve().parent / "embedded"
EMBEDDED_TU = ("MUTAG",)  # shipped with the package (see embedded/MUTAG/README.md)


def _find_raw(name: str, roots: list[Path]) -> Path | None:
    """The raw folder of ``name`` under the first root that has it, else the embedded copy."""
    for r in roots:
        for cand in (r / "TUDataset" / name / "raw", r / name / "raw"):
            if (cand / f"{name}_A.txt").is_file():
                return cand
    if name in EMBEDDED_TU:
        return EMBEDDED / name / "raw"
    return None


def _raw_source(raw: Path) -> str:
    return "TU Dortmund raw text (embedded in the package)" if raw.is_relative_to(EMBEDDED) else "TU Dortmund raw text"


TU_CACHE_VERSION = 2
TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets"


def _download_tu(name: str) -> Path:
    """Fetch ``NAME.zip`` from the TU collection into the cache; returns its raw folder."""
    base = cache_dir("tu", "downloads")
    raw = base / name / "raw"
    if (raw / f"{name}_A.txt").is_file():
        return raw
    archive = download_url(f"{TU_URL}/{name}.zip", str(base))
    extract_zip(archive, str(base))
    Path(archive).unlink(missing_ok=True)
    raw.mkdir(parents=True, exist_ok=True)
    for f in (base / name).glob(f"{name}_*.txt"):
        f.replace(raw / f.name)
    return raw


def _parse_raw(raw: Path, name: str) -> dict[str, np.ndarray]:
    """The raw TU text files as flat arrays with per-graph offsets (torch_geometric's reader)."""
    try:
        data, slices, _ = read_tu_data(str(raw), name)
    except Exception as e:  # noqa: BLE001 - any parse failure is a damaged dataset, named in one line
        raise DatasetError(f"{raw}: the {name} TU files do not parse ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None
    out = {"edge_index": data.edge_index.numpy(), "y": data.y.numpy()}
    for k in sorted(slices):
        out[f"slice_{k}"] = slices[k].numpy()
    if data.x is not None:
        out["x"] = data.x.numpy()
        out["num_nodes"] = np.diff(out["slice_x"])
    else:
        out["num_nodes"] = np.asarray(data._num_nodes, dtype=np.int64)
    if data.edge_attr is not None:
        out["edge_attr"] = data.edge_attr.numpy()
    return out


def _tu_fingerprint(name: str, a: dict[str, np.ndarray]) -> str:
    parts = [a["edge_index"], a["y"]] + [a[k] for k in sorted(a) if k.startswith("slice_")]
    parts += [a[k] for k in ("x", "edge_attr") if k in a]
    return content_hash(name, *parts)


@functools.lru_cache(maxsize=8)
def _tu_arrays(name: str, raw: str, signature: str) -> tuple[dict[str, np.ndarray], str]:
    """Parsed arrays and their fingerprint: from the checked cache, else parsed and cached."""
    cache = cache_dir("tu", write=False) / f"{name}-{content_hash(f'v{TU_CACHE_VERSION}', name, signature)[:16]}.npz"
    arrays = load_npz(cache)
    if arrays is not None:
        stored = str(arrays.pop("fingerprint", ""))
        try:
            if stored and _tu_fingerprint(name, arrays) == stored:
                return arrays, stored
        except KeyError:
            pass
    arrays = _parse_raw(Path(raw), name)
    fp = _tu_fingerprint(name, arrays)
    try_cache("parsed graph sets", lambda: (cache_dir("tu"), atomic_save_npz(cache, fingerprint=np.array(fp), **arrays)))
    return arrays, fp


def _graphs_from(a: dict[str, np.ndarray]) -> list[Data]:
    ei, y = torch.from_numpy(a["edge_index"]), torch.from_numpy(a["y"])
    x = torch.from_numpy(a["x"]) if "x" in a else None
    ea = torch.from_numpy(a["edge_attr"]) if "edge_attr" in a else None
    es, xs = a["slice_edge_index"], a.get("slice_x")
    graphs = []
    for i in range(len(y)):
        kw = {"x": x[xs[i]:xs[i + 1]]} if x is not None else {"num_nodes": int(a["num_nodes"][i])}
        kw["edge_index"] = ei[:, es[i]:es[i + 1]]
        if ea is not None:
            kw["edge_attr"] = ea[es[i]:es[i + 1]]
        d = Data(**kw, y=y[i:i + 1])
        graphs.append(d)
    return graphs


def _tu_full(name: str, root, download) -> tuple[list[Data], str, str, int]:
    roots = data_roots(root)
    raw = _find_raw(name, roots)
    if raw is not None:
        source = _raw_source(raw)
    elif download_allowed(download):
        raw, source = _download_tu(name), "TU Dortmund (downloaded)"
    else:
        looked = [f"{r}/TUDataset/{name}/raw" for r in roots] + [f"{r}/{name}/raw" for r in roots]
        note = ""
        if name not in KNOWN_TU:
            note = f"it is not an image dataset ({', '.join(IMAGE_DATASETS)}), so it was taken as a TU graph dataset"
        raise not_found(name, looked, note=note, how=
                        f"put the TU raw files ({name}_A.txt, {name}_graph_indicator.txt, ...) under "
                        "<root>/TUDataset/<NAME>/raw/; set CONDENSE_DATA or pass root=, or allow "
                        "downloading with download=True / CONDENSE_DOWNLOAD=1 (image dataset names "
                        "are listed by `python -m condense datasets`)")
    arrays, fingerprint = _tu_arrays(name, str(raw), stat_signature(sorted(raw.glob(f"{name}_*.txt"))))
    graphs = _graphs_from(arrays)
    num_classes = int(arrays["y"].max()) + 1
    if "x" not in arrays or arrays["x"].size == 0:
        graphs = _one_hot_degree(graphs)
        source += ", one-hot degree node features"
    for g in graphs:
        g.x = g.x.float()
        if g.edge_attr is not None:
            g.edge_attr = g.edge_attr.float()
    return graphs, fingerprint, source, num_classes


def _one_hot_degree(graphs: list[Data]) -> list[Data]:
    """Node features for a set without any: the out-degree one-hot over 0..the set's largest degree
    (PyG's ``OneHotDegree``)."""
    top = max((int(degree(g.edge_index[0], g.num_nodes).max()) for g in graphs if g.num_nodes), default=0)
    one_hot = T.OneHotDegree(top)
    for g in graphs:
        g.x = None  # no features to keep: the degree is the feature
    return [one_hot(g) for g in graphs]


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


def continuous_columns(graphs: list[Data]) -> list[int]:
    """Node-feature columns that are not 0/1 indicators anywhere in the dataset (TU node attributes)."""
    x = torch.cat([g.x for g in graphs]) if graphs else torch.zeros(0, 0)
    if not x.numel():
        return []
    return [j for j in range(x.shape[1]) if not bool(((x[:, j] == 0) | (x[:, j] == 1)).all())]


def standardise(graphs: list[Data], idx: np.ndarray, train: np.ndarray, columns: list[int]) -> None:
    """Continuous node attributes to zero mean and unit variance over the training split's nodes
    (raw TU attributes reach the hundreds); every split takes the training statistics. In place, on
    ``graphs[i]`` for ``i`` in ``idx`` (fresh copies for every load)."""
    x = torch.cat([graphs[i].x[:, columns] for i in train]).double()
    mean, std = x.mean(0), x.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    for i in idx:
        g = graphs[i]
        g.x = g.x.clone()
        g.x[:, columns] = ((g.x[:, columns].double() - mean) / std).float()


SPLIT_RULES = {"": "stratified 80/10/10",
               "mirage": "the official Mirage scripts' split: a torch.randperm under seed 0, the first tenth "
                         "(rounded up) the test split, the next tenth val, the rest train; edge attributes "
                         "dropped, as their NCI1 preparation sets every one to 1"}


def split_rule(name: str) -> tuple[str, str]:
    """A dataset name's TU set and split rule: ``NCI1@mirage`` -> (``NCI1``, ``mirage``)."""
    base, _, rule = name.partition("@")
    if rule not in SPLIT_RULES:
        raise DatasetError(f"{name}: unknown split rule {rule!r}; known: "
                           f"{', '.join(repr(r) for r in SPLIT_RULES if r)} (or none)")
    return base, rule


def mirage_split_indices(n: int, split: str) -> np.ndarray:
    """The official Mirage split (``graph-*-finalize-*.py``): PyG's ``dataset.shuffle()`` after
    ``torch.manual_seed(0)``, then test = the first ⌈n/10⌉ graphs, val the next ⌈n/10⌉, train the rest."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).numpy()
    k = (n + 9) // 10
    return {"test": perm[:k], "val": perm[k:2 * k], "train": perm[2 * k:]}[split]


def load_graph_dataset(name: str, split: str, root=None, download=None) -> GraphDataset:
    check_split(split)
    base, rule = split_rule(name)
    graphs, fp, source, num_classes = _tu_full(base, root, download)
    labels = np.array([int(g.y) for g in graphs])
    if rule == "mirage":
        idx, train_idx = mirage_split_indices(len(graphs), split), mirage_split_indices(len(graphs), "train")
        for g in graphs:
            g.edge_attr = None
        source += ", the official Mirage split, edge attributes dropped"
    else:
        idx, train_idx = graph_split_indices(labels, split), None
    spec = {"split": split, "rule": SPLIT_RULES[rule], "seed": SPLIT_SEED if not rule else 0}
    columns = continuous_columns(graphs)
    if columns:   # part of the data's identity: a set made from raw attributes is not one of these
        standardise(graphs, idx, train_idx if train_idx is not None else graph_split_indices(labels, "train"), columns)
        spec["standardised"] = columns
        source += ", continuous node attributes standardised with training statistics"
    info = {**spec, "total": len(graphs), "size": int(len(idx))}
    return GraphDataset([graphs[i] for i in idx], name=name, split=split,
                        classes=tuple(str(c) for c in range(num_classes)),
                        fingerprint=derived_fingerprint(fp, spec), source=source, split_info=info,
                        positions=idx)


def graph_availability(name: str, root=None) -> dict:
    raw = _find_raw(split_rule(name)[0], data_roots(root))
    if raw is None:
        return {"available": False, "source": None, "where": None}
    return {"available": True, "source": _raw_source(raw), "where": str(raw)}
