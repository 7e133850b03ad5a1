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
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..checks import Rule, check_config
from ..comptrees import (CodeTable, GraphUnion, graph_union, computation_tree_codes, degree_array,  # noqa: F401
                         discrete_labels, transactions, unroll)
from ..itemsets import TooManyItemsets, bitsets, eclat, support  # noqa: F401
from ..treesets import Pattern, TreeSetMiner, search_budget, support_levels
from ..format import pack_graphs
from ..format.summaries import POINTER_HEAD, mean_graph_bytes
from ._common import CondenseOutput
from .base import Condenser, register_condenser

# Hops per dataset: the official pipelines (NCI1, IMDB-B 2; DD 1; ogbg-molbace, ogbg-molhiv 3).
# MUTAG and PROTEINS have no official pipeline: 2, like the other small TU sets.
OFFICIAL_HOPS = {"NCI1": 2, "IMDB-BINARY": 2, "DD": 1, "ogbg-molbace": 3, "ogbg-molhiv": 3}
DEFAULT_HOPS = {**OFFICIAL_HOPS, "MUTAG": 2, "PROTEINS": 2}
FALLBACK_HOPS = 2
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
    drop_singletons: bool = False              # the official code keeps single-tree sets (the paper drops them)
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
        "classes (the official scripts: binary only); single-tree sets are kept, as the official code does "
        "(the paper's text drops them; drop_singletons=True)",
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
        base = dataset.partition("@")[0]   # NCI1@mirage: NCI1 under another split
        return int(self.config.hops) if self.config.hops is not None else DEFAULT_HOPS.get(base, FALLBACK_HOPS)

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
        miner = TreeSetMiner(tx, split.y, C, table, hops, node_bytes=4 * F + NODE_EXTRA, edge_bytes=16 + 4 * D, cfg=cfg)
        info: dict = {"hops": hops, "node_labels": int(split.node_labels.max()) + 1 if split.node_labels.size else 0,
                      "edge_labels": None if split.edge_labels is None else int(split.edge_labels.max()) + 1,
                      "distinct_trees": int(np.unique(codes[hops][nontrivial]).size)}
        deviations = []
        if cfg.hops is None and train.name.partition("@")[0] not in OFFICIAL_HOPS:
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

    def _by_thresholds(self, miner: TreeSetMiner, C: int, info: dict) -> dict[int, list[Pattern]]:
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

    def _by_supports(self, miner: TreeSetMiner, C: int, info: dict) -> dict[int, list[Pattern]]:
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

    def _by_budget(self, miner: TreeSetMiner, split: GraphUnion, ipc: int, C: int, info: dict) -> dict[int, list[Pattern]]:
        counts = np.bincount(split.y, minlength=C)
        F = split.x.shape[1]
        D = 0 if split.edge_attr is None else split.edge_attr.shape[1]
        graph_bytes = mean_graph_bytes(split.x.shape[0], split.edge_index.shape[1], len(split.y), F, D)
        per_class = [min(ipc, int(n)) * graph_bytes for n in counts]
        total = float(sum(per_class)) + 16
        if self.config.budget_bytes is not None:
            if self.config.budget_bytes > total:   # the set is labelled IPC ipc: its budget may not exceed it
                raise ValueError(f"mirage budget_bytes {self.config.budget_bytes} exceed the {int(total)} bytes of "
                                 f"{ipc} random training graphs per class; raise the IPC instead")
            total = float(self.config.budget_bytes)
        room = total - POINTER_HEAD  # the three pointer arrays' leading zeros
        shares = [room * p / sum(per_class) for p in per_class] if sum(per_class) else [room / C] * C
        levels = support_levels(self.config)
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

    def _summary(self, chosen: dict[int, list[Pattern]], split: GraphUnion, final: np.ndarray, table: CodeTable,
                 hops: int) -> dict:
        from torch_geometric.data import Data   # torch_geometric loads with graph work only

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
