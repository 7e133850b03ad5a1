"""Computation trees of graph nodes (Mirage §3): node and edge features discretised into labels, the
``hops``-hop tree rooted at each node unrolled, and every tree given a canonical code by iterated
label refinement, so that isomorphic trees share a code."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def discrete_labels(x: np.ndarray | None, n: int, bins: int = 3) -> np.ndarray:
    """One integer label per row: the index of the row's distinct value.

    One-hot rows map to their hot column (so MUTAG's atom types keep their TU numbers). Continuous
    columns (anything but 0/1) are first cut into ``bins`` quantile bins, so node *attributes* give
    finitely many labels; ``bins=0`` ignores them. ``None`` or zero columns: every row gets label 0.
    """
    if x is None or x.ndim != 2 or x.shape[1] == 0:
        return np.zeros(n, dtype=np.int64)
    binary = np.all((x == 0) | (x == 1), axis=0)
    if binary.all() and np.all(x.sum(1) == 1):
        return x.argmax(1).astype(np.int64)
    parts = [x[:, binary]]
    for j in np.flatnonzero(~binary):
        if bins > 0:
            edges = np.unique(np.quantile(x[:, j], np.linspace(0, 1, bins + 1)[1:-1]))
            parts.append(np.digitize(x[:, j], edges)[:, None].astype(x.dtype))
    rows = np.concatenate(parts, axis=1)
    if rows.shape[1] == 0:
        return np.zeros(n, dtype=np.int64)
    return np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


# ----------------------------------------------------------------------------- computation trees


@dataclass
class _Level:
    """Codes of one depth: code ``offsets[b] + i`` is row ``i`` of bucket ``b`` (``degrees[b]`` children)."""

    radix: int                                   # child code k at the previous depth, edge label e: e*radix + k
    offsets: np.ndarray
    degrees: list[int]
    rows: list[np.ndarray]                       # per bucket: [label, key_1, ..., key_d], keys sorted


@dataclass
class CodeTable:
    """The structure behind every code: depth 0 codes are node labels; a code at depth h is a label
    and the sorted multiset of (edge label, depth h-1 code). Gives canonical strings and sizes."""

    levels: list[_Level]
    edge_labels: bool                            # show ``edge:child`` (else just ``child``)
    _strings: dict = field(default_factory=dict)
    _sizes: dict = field(default_factory=dict)

    def children(self, depth: int, code: int) -> tuple[int, list[tuple[int, int]]]:
        """(label, [(edge label, child code at depth-1), ...]) of a code."""
        if depth == 0:
            return int(code), []
        lv = self.levels[depth - 1]
        b = int(np.searchsorted(lv.offsets, code, side="right")) - 1
        row = lv.rows[b][code - lv.offsets[b]]
        return int(row[0]), [(int(k // lv.radix), int(k % lv.radix)) for k in row[1:]]

    def string(self, depth: int, code: int) -> str:
        """Canonical string: ``label`` or ``label(e:child,...)`` with children sorted as strings, so
        isomorphic trees get equal strings whatever the dataset (an AHU-style encoding)."""
        key = (depth, int(code))
        if key not in self._strings:
            label, kids = self.children(depth, code)
            if not kids:
                s = str(label)
            else:
                parts = sorted((f"{e}:" if self.edge_labels else "") + self.string(depth - 1, c) for e, c in kids)
                s = f"{label}({','.join(parts)})"
            self._strings[key] = s
        return self._strings[key]

    def size(self, depth: int, code: int) -> int:
        """Number of nodes of the tree."""
        key = (depth, int(code))
        if key not in self._sizes:
            _, kids = self.children(depth, code)
            self._sizes[key] = 1 + sum(self.size(depth - 1, c) for _, c in kids)
        return self._sizes[key]


def _refine(labels: np.ndarray, prev: np.ndarray, child: np.ndarray, parent: np.ndarray,
            elab: np.ndarray, radix: int) -> tuple[np.ndarray, _Level]:
    """One WL step: each node's new code is the id of (label, sorted (edge label, child code) keys)."""
    n = labels.shape[0]
    key = elab * radix + prev[child]
    order = np.lexsort((key, parent))
    keys = key[order]
    deg = np.bincount(parent, minlength=n)
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(deg, out=start[1:])
    new = np.empty(n, dtype=np.int64)
    offsets, degrees, rows, offset = [], [], [], 0
    for d in np.unique(deg).tolist():
        nodes = np.flatnonzero(deg == d)
        m = np.empty((nodes.size, d + 1), dtype=np.int64)
        m[:, 0] = labels[nodes]
        if d:
            m[:, 1:] = keys[start[nodes][:, None] + np.arange(d)]
        uniq, inv = np.unique(m, axis=0, return_inverse=True)
        new[nodes] = offset + inv.reshape(-1)
        offsets.append(offset)
        degrees.append(d)
        rows.append(uniq)
        offset += uniq.shape[0]
    return new, _Level(radix, np.asarray(offsets, dtype=np.int64), degrees, rows)


def computation_tree_codes(labels: np.ndarray, edge_index: np.ndarray, edge_labels: np.ndarray | None,
                           hops: int) -> tuple[list[np.ndarray], CodeTable]:
    """Codes of every node's 0..``hops``-hop computation tree (``codes[h][v]``) and their table.

    The children of ``v`` are the sources of the edges into ``v`` (messages flow source -> target),
    i.e. all neighbours of ``v`` in an undirected graph, the parent included. Equal codes at depth h
    <=> isomorphic labelled h-hop trees. Cost: ``hops`` sorts of the edge list.
    """
    labels = np.asarray(labels, dtype=np.int64)
    src, dst = (np.asarray(edge_index, dtype=np.int64)[i] for i in (0, 1))
    elab = np.zeros(src.shape[0], dtype=np.int64) if edge_labels is None else np.asarray(edge_labels, dtype=np.int64)
    codes, levels = [labels], []
    radix = int(labels.max()) + 1 if labels.size else 1
    for _ in range(hops):
        nxt, level = _refine(labels, codes[-1], src, dst, elab, radix)
        codes.append(nxt)
        levels.append(level)
        radix = int(level.offsets[-1] + level.rows[-1].shape[0]) if level.rows else 1
    return codes, CodeTable(levels, edge_labels=edge_labels is not None)


def unroll(root: int, hops: int, in_ptr: np.ndarray, in_src: np.ndarray, in_eid: np.ndarray):
    """The ``hops``-hop computation tree of ``root``: (original node per tree node, child->parent
    edges in tree-local indices, original edge id per tree edge). Node 0 is the root."""
    nodes, src, dst, eids = [np.array([root])], [], [], []
    frontier, frontier_idx, count = np.array([root]), np.array([0]), 1
    for _ in range(hops):
        deg = in_ptr[frontier + 1] - in_ptr[frontier]
        total = int(deg.sum())
        if total == 0:
            break
        first = np.repeat(in_ptr[frontier], deg)
        pos = first + np.arange(total) - np.repeat(np.cumsum(deg) - deg, deg)
        kids = in_src[pos]
        idx = count + np.arange(total)
        src.append(idx)
        dst.append(np.repeat(frontier_idx, deg))
        eids.append(in_eid[pos])
        nodes.append(kids)
        frontier, frontier_idx, count = kids, idx, count + total
    cat = (lambda a: np.concatenate(a) if a else np.zeros(0, np.int64))
    return np.concatenate(nodes), np.stack([cat(src), cat(dst)]), cat(eids)


# ----------------------------------------------------------------------------- a split as one union


@dataclass
class GraphUnion:
    """The training split as one disjoint union, with discrete labels and per-graph transactions."""

    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray | None
    graph_of_node: np.ndarray
    y: np.ndarray
    node_labels: np.ndarray
    edge_labels: np.ndarray | None


def graph_union(train, bins: int) -> GraphUnion:
    """The training graphs as one disjoint union (PyG's ``Batch``), nodes and edges discretised."""
    from torch_geometric.data import Batch   # torch_geometric loads with graph work only

    b = Batch.from_data_list(list(train))
    nptr = b.ptr.numpy()
    ei, x, y = b.edge_index.numpy(), b.x.numpy(), b.y.view(-1).numpy()
    ea = None if getattr(b, "edge_attr", None) is None else b.edge_attr.numpy()
    gon = np.repeat(np.arange(len(nptr) - 1), np.diff(nptr))
    nl = discrete_labels(x, x.shape[0], bins)
    el = None if ea is None else discrete_labels(ea, ea.shape[0], bins)
    return GraphUnion(x.astype(np.float32), ei.astype(np.int64), None if ea is None else ea.astype(np.float32),
                  gon, y.astype(np.int64), nl, el)


def transactions(codes: np.ndarray, graph_of_node: np.ndarray, nontrivial: np.ndarray,
                 num_graphs: int) -> list[np.ndarray]:
    """Per graph: the sorted distinct codes of its nodes with at least one child."""
    keep = nontrivial
    g, c = graph_of_node[keep], codes[keep]
    pairs = np.unique(np.stack([g, c], 1), axis=0) if g.size else np.zeros((0, 2), np.int64)
    bounds = np.searchsorted(pairs[:, 0], np.arange(num_graphs + 1))
    return [pairs[bounds[i]:bounds[i + 1], 1] for i in range(num_graphs)]


def degree_array(deg: np.ndarray) -> torch.Tensor:
    """Degrees in the narrowest integer type that holds them (int16 unless a node has 32k neighbours)."""
    dtype = torch.int16 if deg.size == 0 or int(deg.max()) < 2 ** 15 else torch.int32
    return torch.from_numpy(deg.astype(np.int64)).to(dtype)
