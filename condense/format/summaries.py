"""The byte budget of graph summaries (Mirage's tree-sets), proved from content (``docs/format.md`` §5).

A summary set built to a byte budget records, in ``extra``, the budget (``budget_bytes``), each
class's share (``class_budget_bytes``), the classes whose smallest tree-set alone exceeds its share
(``over_budget``), and the mean bytes of one training graph (``random_graph_bytes``), from which
the budget of IPC random graphs per class follows. A reader checks, from the stored arrays alone:

- each class's graphs take no more bytes than its share, unless the class is ``over_budget`` and
  holds a single graph (its smallest tree-set);
- the shares sum to no more than the budget;
- the budget is no more than what ``ipc`` random graphs per class take: ``ipc × C × random_graph_bytes``
  plus the pointers' leading zeros. So an ``ipc`` edited down is refused.

``random_graph_bytes`` is a claim about the source; :func:`check_source_budget` recomputes it from
the local training split wherever the evaluator holds it. A summary not sized by a byte budget says
which setting sized it (``extra.mode`` ``thresholds`` or ``supports``, set in ``method_config``); its
``ipc`` is then a label, and tables show its bytes beside the byte-matched random row.
"""
from __future__ import annotations

import math

import torch

#: the leading zero of node_ptr, edge_ptr and tree_ptr (int64), outside every class's share
POINTER_HEAD = 24
#: a graph's pointer entries beyond its arrays in the random-graph estimate (node_ptr, edge_ptr, labels)
RANDOM_GRAPH_OVERHEAD = 24
UNBUDGETED_MODES = ("thresholds", "supports")


def mean_graph_bytes(nodes: int, edges: int, graphs: int, node_features: int, edge_features: int) -> float:
    """The mean stored bytes of one graph of a split: float32 features, int64 edge pairs, three pointers."""
    if graphs <= 0:
        return 0.0
    return (nodes * 4 * node_features + edges * (16 + 4 * edge_features)) / graphs + RANDOM_GRAPH_OVERHEAD


def source_graph_bytes(train) -> float:
    """:func:`mean_graph_bytes` of a graph dataset (an iterable of PyG ``Data``)."""
    nodes = edges = n = 0
    F = D = 0
    for d in train:
        nodes, edges, n = nodes + int(d.num_nodes), edges + int(d.edge_index.shape[1]), n + 1
        F = int(d.x.shape[1]) if d.x is not None and d.x.ndim == 2 else F
        ea = getattr(d, "edge_attr", None)
        D = int(ea.shape[1]) if ea is not None and ea.ndim == 2 else D
    return mean_graph_bytes(nodes, edges, n, F, D)


def class_bytes(g: dict, num_classes: int) -> torch.Tensor:
    """Stored bytes of each class's summary graphs: node rows, edge columns, tree codes and the
    per-graph entries of every graph-level array (as in ``storage_bytes``, less the pointer heads)."""
    labels = g["labels"].long()
    nodes = (g["node_ptr"][1:] - g["node_ptr"][:-1]).long()
    edges = (g["edge_ptr"][1:] - g["edge_ptr"][:-1]).long()

    def row(a: torch.Tensor) -> int:
        return a.element_size() * (a[0].numel() if a.shape[0] else int(math.prod(a.shape[1:])))

    per_node = row(g["x"]) + sum(row(g[k]) for k in ("root_mask", "node_degree") if k in g)
    per_edge = 2 * g["edge_index"].element_size() + (row(g["edge_attr"]) if "edge_attr" in g else 0)
    per_graph = sum(g[k].element_size() for k in ("node_ptr", "edge_ptr", "labels", "frequency", "tree_ptr") if k in g)
    total = nodes * per_node + edges * per_edge + per_graph
    if "tree_codes" in g:
        tp = g["tree_ptr"].long()
        code = torch.tensor([len(str(c).encode()) + 1 for c in g["tree_codes"]], dtype=torch.long)
        csum = torch.cat([torch.zeros(1, dtype=torch.long), code.cumsum(0)])
        total = total + (csum[tp[1:]] - csum[tp[:-1]])
    return torch.zeros(num_classes, dtype=torch.long).index_add_(0, labels, total)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def check_summary_budget(s) -> list[str]:
    """The rules of the module docstring for a summary set ``s`` (its graphs hold ``tree_codes``)."""
    x, g, C = s.extra, s.graphs, s.num_classes
    mode = x.get("mode")
    if mode in UNBUDGETED_MODES:
        if s.method_config.get(mode) is None:
            return [f"a summary sized by {mode} needs method_config.{mode}"]
        return []
    budget, shares, over, rgb = (x.get(k) for k in ("budget_bytes", "class_budget_bytes", "over_budget",
                                                   "random_graph_bytes"))
    if mode != "budget" or not _number(budget) or not _number(rgb) or not isinstance(shares, list) \
            or not isinstance(over, list) or len(shares) != C or len(over) != C \
            or not all(_number(v) for v in shares) or not all(isinstance(v, bool) for v in over):
        return ["a graph summary proves its budget with extra.mode 'budget', budget_bytes, class_budget_bytes, "
                "over_budget and random_graph_bytes (one per class), or names the setting that sized it "
                f"(extra.mode {' or '.join(UNBUDGETED_MODES)})"]
    allowed = s.ipc * C * rgb + POINTER_HEAD
    if budget > allowed + 1:
        return [f"budget_bytes {budget:,} exceed what ipc {s.ipc} random graphs per class take "
                f"({s.ipc} × {C} × {rgb:g} + {POINTER_HEAD} = {allowed:,.0f} bytes)"]
    if sum(shares) > budget:
        return [f"the class shares ({sum(shares):,} bytes) exceed budget_bytes {budget:,}"]
    used = class_bytes(g, C)
    counts = torch.bincount(g["labels"].long(), minlength=C)
    for c in range(C):
        if int(used[c]) > shares[c] and not (over[c] and int(counts[c]) == 1):
            return [f"class {c} ({s.class_names[c]}) takes {int(used[c]):,} bytes, over its share of "
                    f"{shares[c]:,} (class_budget_bytes)"]
    return []


def check_source_budget(s, train) -> None:
    """Refuse a summary whose ``random_graph_bytes`` is not what the local training split gives."""
    if s.kind != "graphs" or s.graphs is None or "tree_codes" not in s.graphs:
        return
    claimed = s.extra.get("random_graph_bytes")
    if claimed is None or s.extra.get("mode") in UNBUDGETED_MODES:
        return
    local = source_graph_bytes(train)
    if not math.isclose(float(claimed), local, rel_tol=1e-6, abs_tol=1e-6):
        raise ValueError(f"{s.path or '<memory>'}: extra.random_graph_bytes is {claimed:g}, but one "
                         f"{s.source_dataset}/train graph takes {local:g} bytes on the mean; the byte budget "
                         "does not follow from the source")
