"""Mirage: model-agnostic graph distillation (Gupta, Manchanda, Kodamana, Ranu; ICLR 2024,
"Mirage: Model-Agnostic Graph Distillation for Graph Classification").

An L-layer message-passing GNN sees a graph as the multiset of its nodes' L-hop *computation trees*
(the rooted unrollings, children being all neighbours, the parent included) and pools their root
embeddings (§3 of the paper). Mirage condenses a training set without training any model:

1. **Computation trees** (§3, the computation-tree definition). Every node gets a canonical code for
   its L-hop tree: its label plus the sorted multiset of (edge label, child's (L-1)-hop code). That
   is 1-WL refinement with edge labels, computed here level by level over the whole split in
   O(L·|E| log |E|) with sorts and row-uniques (:func:`computation_tree_codes`), never by unrolling
   trees in Python. :class:`CodeTable` turns a code into its canonical string, e.g. ``"3(0:1,1:2(0:3))"``.
2. **Mining** (Algorithm 1). Each training graph is a transaction: the set of its (non-trivial) tree
   codes. Per class, the frequent tree-sets at a support threshold are mined exactly
   (:func:`eclat`, bitset Eclat: the same output as FP-growth). Singleton tree-sets and tree-sets that
   are frequent in another class are dropped, as the paper does, for any number of classes.
3. **Summary**. Each kept tree-set becomes one graph: the disjoint union of its trees, edges pointing
   child -> parent (messages flow to the root), the original node and edge features restored, a root
   mask, each node's degree in its source graph (a leaf has no children in its tree, yet a GCN weighs
   its message by that degree), the class label, its frequency (support count) and the trees'
   canonical codes.

Thresholds are given per class (``thresholds``, relative supports; ``supports``, absolute counts as
the official scripts set them) or, new here, chosen from a
storage budget: IPC random graphs per class cost B_c bytes, and each class's support is lowered from
high to low until its tree-sets fill B_c (the paper tunes thresholds by hand). The evaluator trains
on the summary pooling root nodes only; how it uses the frequencies is the protocol's
``frequency_mode`` (``proportional``: the paper; ``once``: the official code).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import Data

from ..checks import Rule, check_config
from ..comptrees import (CodeTable, GraphUnion, graph_union, computation_tree_codes, degree_array,  # noqa: F401
                         discrete_labels, transactions, unroll)
from ..itemsets import TooManyItemsets, bitsets, eclat, support  # noqa: F401
from ..format import pack_graphs
from ._common import CondenseOutput
from .base import Condenser, register_condenser

# Hops per dataset: the official pipelines (NCI1, IMDB-B 2; DD 1; ogbg-molbace, ogbg-molhiv 3).
# MUTAG and PROTEINS have no official pipeline: 2, like the other small TU sets.
OFFICIAL_HOPS = {"NCI1": 2, "IMDB-BINARY": 2, "DD": 1, "ogbg-molbace": 3, "ogbg-molhiv": 3}
DEFAULT_HOPS = {**OFFICIAL_HOPS, "MUTAG": 2, "PROTEINS": 2}
FALLBACK_HOPS = 2
GRAPH_OVERHEAD = 8 * 4 + 4  # node_ptr, edge_ptr, labels, tree_ptr (int64) and frequency (int32) per graph
NODE_EXTRA = 1 + 2          # root_mask (bool) and node_degree (int16) per summary node


@dataclass(frozen=True)
class MirageConfig:
    hops: int | None = None                    # None: the evaluation GNN's layers (for_protocol), else
    #                                            DEFAULT_HOPS[dataset], else 2
    thresholds: tuple[float, ...] | None = None  # per-class relative supports (one value: every class);
    #                                            None: chosen from the byte budget
    supports: tuple[int, ...] | None = None    # per-class absolute support counts (one value: every class), the
    #                                            official scripts' thresholds (NCI1: 440/570, then 420/550)
    budget_bytes: int | None = None            # None: the bytes of IPC random training graphs per class
    min_support: float = 0.01                  # the lowest relative support the budget search tries
    support_ratio: float = 0.9                 # successive support levels differ by this factor
    max_pattern_size: int | None = None        # trees per tree-set; None: unbounded, as the paper
    max_itemsets: int = 200_000                # a mining run beyond this counts as over budget
    attr_bins: int = 3                         # quantile bins for continuous node / edge attributes
    drop_singletons: bool = True               # the paper drops single-tree sets
    drop_shared: bool = True                   # and sets frequent in another class

    def __post_init__(self):
        check_config(self, "mirage", hops=Rule(lo=1, hi=8), thresholds=Rule(lo=0, hi=1, lo_open=True, nonempty=True),
                     supports=Rule(lo=1, hi=10**9, nonempty=True),
                     budget_bytes=Rule(lo=1), min_support=Rule(lo=0, hi=1, lo_open=True),
                     support_ratio=Rule(lo=0, hi=1, lo_open=True, hi_open=True), max_pattern_size=Rule(lo=1),
                     max_itemsets=Rule(lo=1), attr_bins=Rule(lo=0, hi=64))
        if self.thresholds is not None and self.supports is not None:
            raise ValueError("mirage takes thresholds (relative) or supports (absolute counts), not both")

    @classmethod
    def preset(cls, name: str) -> "MirageConfig":
        return cls()


# ----------------------------------------------------------------------------- mining under a budget


@dataclass
class _Pattern:
    cls: int
    items: tuple[int, ...]
    support: int
    nbytes: int
    other_support: list[int]


class _Miner:
    """Per class: transactions, bitsets, mined levels (cached) and pattern byte costs."""

    def __init__(self, tx: list[np.ndarray], y: np.ndarray, num_classes: int, table: CodeTable, hops: int,
                 node_bytes: int, edge_bytes: int, cfg: MirageConfig):
        self.cfg, self.table, self.hops = cfg, table, hops
        self.num_classes = num_classes
        self.sizes = [int((y == c).sum()) for c in range(num_classes)]
        self.tidsets = [bitsets([tx[i] for i in np.flatnonzero(y == c)]) for c in range(num_classes)]
        self.node_bytes, self.edge_bytes = node_bytes, edge_bytes
        self._mined: dict[tuple[int, int], list[_Pattern]] = {}
        self._tree_bytes: dict[int, int] = {}
        self._other: dict[tuple[int, ...], list[int]] = {}

    def minsup(self, c: int, rel: float) -> int:
        """Absolute support for a relative one: at least 2 graphs (a single graph is no pattern)."""
        return max(2, math.ceil(rel * self.sizes[c] - 1e-9))

    def tree_bytes(self, code: int) -> int:
        if code not in self._tree_bytes:
            n = self.table.size(self.hops, code)
            s = self.table.string(self.hops, code)
            self._tree_bytes[code] = n * self.node_bytes + (n - 1) * self.edge_bytes + len(s.encode()) + 1
        return self._tree_bytes[code]

    def mine(self, c: int, minsup: int) -> list[_Pattern]:
        """Class ``c``'s frequent tree-sets at ``minsup``, singletons dropped when configured."""
        key = (c, minsup)
        if key not in self._mined:
            found = eclat(self.tidsets[c], minsup, self.cfg.max_pattern_size, self.cfg.max_itemsets)
            out = []
            for items, sup in found:
                if self.cfg.drop_singletons and len(items) < 2:
                    continue
                if items not in self._other:
                    self._other[items] = [support(t, items) for t in self.tidsets]
                nbytes = GRAPH_OVERHEAD + sum(self.tree_bytes(i) for i in items)
                out.append(_Pattern(c, items, sup, nbytes, self._other[items]))
            out.sort(key=lambda p: (-p.support, p.nbytes, p.items))
            self._mined[key] = out
        return self._mined[key]

    def kept(self, c: int, minsup: int, minsups: list[float]) -> list[_Pattern]:
        """Drop tree-sets frequent in another class at that class's threshold (``minsups``)."""
        pats = self.mine(c, minsup)
        if not self.cfg.drop_shared:
            return pats
        return [p for p in pats if not any(p.other_support[o] >= minsups[o]
                                           for o in range(self.num_classes) if o != c)]


def _levels(cfg: MirageConfig) -> list[float]:
    """Relative support levels, from 1 down to ``min_support`` by ``support_ratio``."""
    if not 0 < cfg.support_ratio < 1 or not 0 < cfg.min_support <= 1:
        raise ValueError("mirage needs 0 < support_ratio < 1 and 0 < min_support <= 1")
    out, s = [], 1.0
    while s >= cfg.min_support - 1e-12:
        out.append(s)
        s *= cfg.support_ratio
    return out


def search_budget(miner: _Miner, shares: list[float], levels: list[float]) -> dict:
    """Lower each class's support level by level while its kept tree-sets fit its byte share, then
    top the share up with the most frequent tree-sets of the next level. Lowering one class's
    threshold can only remove (shared) tree-sets from the others, so the rounds repeat until no
    class can go lower. Returns the chosen patterns and thresholds per class."""
    C = miner.num_classes
    idx = [-1] * C                                   # -1: nothing frequent yet (threshold +inf)
    blocked = [False] * C

    def minsups() -> list[float]:
        return [math.inf if idx[c] < 0 else miner.minsup(c, levels[idx[c]]) for c in range(C)]

    def try_level(c: int, i: int):
        ms = minsups()
        ms[c] = miner.minsup(c, levels[i])
        try:
            return miner.kept(c, ms[c], ms)
        except TooManyItemsets:
            return None

    changed = True
    while changed:
        changed = False
        for c in range(C):
            if blocked[c] or idx[c] + 1 >= len(levels):
                continue
            kept = try_level(c, idx[c] + 1)
            if kept is not None and sum(p.nbytes for p in kept) <= shares[c]:
                idx[c] += 1
                changed = True
            elif kept is None:  # the itemsets explode: no lower level for this class
                blocked[c] = True
            # else over its share for now; another class lowering its threshold may free room
    chosen, over = {}, {}
    for c in range(C):
        ms = minsups()
        base = miner.kept(c, ms[c], ms) if idx[c] >= 0 else []
        used = sum(p.nbytes for p in base)
        extra, j = [], idx[c] + 1
        nxt = try_level(c, j) if j < len(levels) else None
        if nxt is not None:
            have = {p.items for p in base}
            for p in nxt:                              # most frequent first
                if p.items not in have and used + p.nbytes <= shares[c]:
                    extra.append(p)
                    used += p.nbytes
        pats = base + extra
        over[c] = False
        if not pats:                                   # keep at least one tree-set per class
            for i in range(max(idx[c], 0), len(levels)):
                cand = try_level(c, i)
                if cand:
                    pats, over[c] = [min(cand, key=lambda p: (p.nbytes, -p.support, p.items))], True
                    idx[c] = max(idx[c], i)
                    break
        chosen[c] = pats
    return {"patterns": chosen, "levels": idx, "over_budget": over}


# ----------------------------------------------------------------------------- the condenser


@register_condenser
class Mirage(Condenser):
    """Frequent computation-tree sets per class (Mirage), under a byte budget or given thresholds."""

    name = "mirage"
    byte_matched = True
    Config = MirageConfig
    kinds = ("graphs",)
    uses_ipc = True
    deterministic = True  # mining is exact: the seed changes nothing
    deviations = (
        "canonical tree codes by vectorised 1-WL refinement with edge labels (equivalent to the official "
        "recursive unrolling); exact bitset Eclat instead of pyfpgrowth (the same frequent itemsets)",
        "tree-sets frequent in any other class (at that class's threshold) are dropped for every number of "
        "classes (the official scripts: binary only), and single-tree sets are dropped as the paper says "
        "(the official scripts keep them)",
        "a frequent tree-set must occur in at least 2 training graphs",
        "a tree code's representative tree is its first occurrence in the split (official: the last seen)",
        "node and edge labels are the distinct feature rows; continuous attributes are cut into attr_bins "
        "quantile bins first",
        "frequencies are stored as support counts; the evaluator's frequency_mode decides how they are used",
    )

    def for_protocol(self, protocol) -> "Mirage":
        """Trees as deep as the evaluation GNN: an L-layer message-passing GNN sees exactly the L-hop
        computation trees (§3), so ``hops`` follows the protocol's ``num_layers`` unless it is set."""
        layers = dict(protocol.arch_kwargs).get("num_layers")
        if self.config.hops is not None or layers is None:
            return self
        return Mirage(dataclasses.replace(self.config, hops=int(layers)))

    def hops_for(self, dataset: str) -> int:
        return int(self.config.hops) if self.config.hops is not None else DEFAULT_HOPS.get(dataset, FALLBACK_HOPS)

    def _condense(self, train, ipc, *, seed, device, progress):
        cfg, C = self.config, len(train.classes)
        hops = self.hops_for(train.name)
        if hops < 1:
            raise ValueError(f"mirage needs hops >= 1, got {hops}")
        t0 = time.perf_counter()
        split = graph_union(train, cfg.attr_bins)
        codes, table = computation_tree_codes(split.node_labels, split.edge_index, split.edge_labels, hops)
        nontrivial = np.bincount(split.edge_index[1], minlength=split.x.shape[0]) > 0
        tx = transactions(codes[hops], split.graph_of_node, nontrivial, len(split.y))
        tree_seconds = time.perf_counter() - t0
        F = split.x.shape[1]
        D = 0 if split.edge_attr is None else split.edge_attr.shape[1]
        miner = _Miner(tx, split.y, C, table, hops, node_bytes=4 * F + NODE_EXTRA, edge_bytes=16 + 4 * D, cfg=cfg)
        info: dict = {"hops": hops, "node_labels": int(split.node_labels.max()) + 1 if split.node_labels.size else 0,
                      "edge_labels": None if split.edge_labels is None else int(split.edge_labels.max()) + 1,
                      "distinct_trees": int(np.unique(codes[hops][nontrivial]).size)}
        deviations = []
        if cfg.hops is None and train.name not in OFFICIAL_HOPS:
            deviations.append(f"hops={hops} for {train.name}: no official pipeline for this dataset")
        if cfg.supports is not None:
            chosen = self._by_supports(miner, C, info)
        elif cfg.thresholds is None:
            chosen = self._by_budget(miner, split, ipc, C, info)
            deviations.append("support thresholds set automatically to fill a byte budget of IPC random "
                              "training graphs per class (the paper tunes thresholds by hand)")
        else:
            chosen = self._by_thresholds(miner, C, info)
        info["mining_seconds"] = time.perf_counter() - t0 - tree_seconds
        info["tree_seconds"] = tree_seconds
        if not any(chosen.values()):
            raise ValueError(f"mirage found no tree-set of two or more trees to keep in {train.name}; "
                             "lower min_support or the thresholds, or change hops")
        parts = self._summary(chosen, split, codes[hops], table, hops)
        info["patterns_per_class"] = [len(chosen[c]) for c in range(C)]
        sizes = [len(p.items) for c in range(C) for p in chosen[c]]
        info["trees_per_pattern_mean"] = float(np.mean(sizes)) if sizes else 0.0
        return CondenseOutput({"kind": "graphs", "graphs": parts}, extra=info, deviations=tuple(deviations))

    # -- thresholds

    def _by_thresholds(self, miner: _Miner, C: int, info: dict) -> dict[int, list[_Pattern]]:
        th = tuple(self.config.thresholds)
        if len(th) == 1:
            th = th * C
        if len(th) != C or not all(0 < t <= 1 for t in th):
            raise ValueError(f"mirage thresholds must be {C} relative supports in (0, 1] (or one for all), got {th}")
        ms = [miner.minsup(c, th[c]) for c in range(C)]
        chosen = {c: miner.kept(c, ms[c], ms) for c in range(C)}
        empty = [c for c in range(C) if not chosen[c]]
        if empty:
            raise ValueError(f"mirage: no tree-set of two or more trees is frequent in class(es) {empty} alone at "
                             f"supports {[th[c] for c in empty]}; lower the thresholds")
        info.update(mode="thresholds", support=list(th), minsup=ms)
        return chosen

    def _by_supports(self, miner: _Miner, C: int, info: dict) -> dict[int, list[_Pattern]]:
        """The official scripts' rule (Algorithm 1 with hand-set thresholds): a tree-set is kept when at
        least ``supports[c]`` training graphs of its class contain it; the set's size follows."""
        sup = tuple(int(v) for v in self.config.supports)
        if len(sup) == 1:
            sup = sup * C
        if len(sup) != C:
            raise ValueError(f"mirage supports must be {C} absolute counts (or one for all), got {sup}")
        ms = [max(2, v) for v in sup]
        chosen = {c: miner.kept(c, ms[c], ms) for c in range(C)}
        empty = [c for c in range(C) if not chosen[c]]
        if empty:
            raise ValueError(f"mirage: no tree-set of two or more trees is frequent in class(es) {empty} alone at "
                             f"supports {[sup[c] for c in empty]} (class sizes {[miner.sizes[c] for c in empty]}); "
                             "lower the supports")
        info.update(mode="supports", minsup=ms, support=[ms[c] / max(miner.sizes[c], 1) for c in range(C)],
                    class_sizes=list(miner.sizes))
        return chosen

    def _by_budget(self, miner: _Miner, split: GraphUnion, ipc: int, C: int, info: dict) -> dict[int, list[_Pattern]]:
        counts = np.bincount(split.y, minlength=C)
        F = split.x.shape[1]
        D = 0 if split.edge_attr is None else split.edge_attr.shape[1]
        graph_bytes = (split.x.shape[0] * 4 * F + split.edge_index.shape[1] * (16 + 4 * D)) / len(split.y) + 24
        per_class = [min(ipc, int(n)) * graph_bytes for n in counts]
        total = float(self.config.budget_bytes) if self.config.budget_bytes is not None else float(sum(per_class)) + 16
        room = total - 24  # the three pointer arrays' leading zeros
        shares = [room * p / sum(per_class) for p in per_class] if sum(per_class) else [room / C] * C
        levels = _levels(self.config)
        res = search_budget(miner, shares, levels)
        chosen = res["patterns"]
        effective = [min((p.support for p in chosen[c]), default=None) for c in range(C)]
        info.update(mode="budget", budget_bytes=int(total), class_budget_bytes=[int(s) for s in shares],
                    random_graph_bytes=float(graph_bytes),
                    level_support=[None if i < 0 else levels[i] for i in res["levels"]],
                    minsup=effective,
                    support=[None if e is None else e / max(int(counts[c]), 1) for c, e in enumerate(effective)],
                    over_budget=[bool(res["over_budget"][c]) for c in range(C)])
        return chosen

    # -- the summary

    def _summary(self, chosen: dict[int, list[_Pattern]], split: GraphUnion, final: np.ndarray, table: CodeTable,
                 hops: int) -> dict:
        order = np.argsort(split.edge_index[1], kind="stable")
        in_src, in_eid = split.edge_index[0][order], order
        in_ptr = np.zeros(split.x.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(split.edge_index[1], minlength=split.x.shape[0]), out=in_ptr[1:])
        needed = sorted({i for pats in chosen.values() for p in pats for i in p.items})
        first = {}
        if needed:
            nodes = np.flatnonzero(np.isin(final, needed))
            for v in nodes[::-1].tolist():            # reversed: the first occurrence wins
                first[int(final[v])] = v
        trees = {code: unroll(first[code], hops, in_ptr, in_src, in_eid) for code in needed}
        degree = np.diff(in_ptr)
        graphs, roots, degs, freq, tree_codes, tree_ptr = [], [], [], [], [], [0]
        for c in sorted(chosen):
            for p in chosen[c]:
                items = sorted(p.items, key=lambda i: table.string(hops, i))
                xs, eis, eas, mask, off = [], [], [], [], 0
                for code in items:
                    nodes, ei, eid = trees[code]
                    xs.append(split.x[nodes])
                    eis.append(ei + off)
                    if split.edge_attr is not None:
                        eas.append(split.edge_attr[eid])
                    m = np.zeros(nodes.size, dtype=bool)
                    m[0] = True
                    mask.append(m)
                    degs.append(degree[nodes])
                    off += nodes.size
                    tree_codes.append(table.string(hops, code))
                d = Data(x=torch.from_numpy(np.concatenate(xs)), edge_index=torch.from_numpy(np.concatenate(eis, 1)),
                         y=torch.tensor([c]))
                if split.edge_attr is not None:
                    d.edge_attr = torch.from_numpy(np.concatenate(eas).reshape(-1, split.edge_attr.shape[1]))
                graphs.append(d)
                roots.append(np.concatenate(mask))
                freq.append(p.support)
                tree_ptr.append(len(tree_codes))
        return pack_graphs(graphs, root_mask=torch.from_numpy(np.concatenate(roots)),
                           node_degree=degree_array(np.concatenate(degs)),
                           frequency=torch.tensor(freq, dtype=torch.int32), tree_codes=tree_codes,
                           tree_ptr=torch.tensor(tree_ptr, dtype=torch.long))
