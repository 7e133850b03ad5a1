"""Mirage's tree-sets per class (Algorithm 1), mined under support thresholds or a byte budget.

:class:`TreeSetMiner` holds one class's transactions as bitsets, mines its frequent tree-sets
(:func:`condense.itemsets.eclat`), drops the sets frequent in another class, and prices each set in
the bytes its summary graph will take. :func:`search_budget` lowers each class's support level by
level until its sets fill the class's byte share (the budget mode; the paper tunes thresholds by hand).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .comptrees import CodeTable
from .itemsets import TooManyItemsets, bitsets, eclat, support

GRAPH_OVERHEAD = 8 * 4 + 4  # node_ptr, edge_ptr, labels, tree_ptr (int64) and frequency (int32) per graph


@dataclass
class Pattern:
    cls: int
    items: tuple[int, ...]
    support: int
    nbytes: int
    other_support: list[int]


class TreeSetMiner:
    """Per class: transactions, bitsets, mined levels (cached) and pattern byte costs."""

    def __init__(self, tx: list[np.ndarray], y: np.ndarray, num_classes: int, table: CodeTable, hops: int,
                 node_bytes: int, edge_bytes: int, cfg):
        self.cfg, self.table, self.hops = cfg, table, hops
        self.num_classes = num_classes
        self.sizes = [int((y == c).sum()) for c in range(num_classes)]
        self.tidsets = [bitsets([tx[i] for i in np.flatnonzero(y == c)]) for c in range(num_classes)]
        self.node_bytes, self.edge_bytes = node_bytes, edge_bytes
        self._mined: dict[tuple[int, int], list[Pattern]] = {}
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

    def mine(self, c: int, minsup: int) -> list[Pattern]:
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
                out.append(Pattern(c, items, sup, nbytes, self._other[items]))
            out.sort(key=lambda p: (-p.support, p.nbytes, p.items))
            self._mined[key] = out
        return self._mined[key]

    def kept(self, c: int, minsup: int, minsups: list[float]) -> list[Pattern]:
        """Drop tree-sets frequent in another class at that class's threshold (``minsups``)."""
        pats = self.mine(c, minsup)
        if not self.cfg.drop_shared:
            return pats
        return [p for p in pats if not any(p.other_support[o] >= minsups[o]
                                           for o in range(self.num_classes) if o != c)]


def support_levels(cfg) -> list[float]:
    """Relative support levels, from 1 down to ``min_support`` by ``support_ratio``."""
    if not 0 < cfg.support_ratio < 1 or not 0 < cfg.min_support <= 1:
        raise ValueError("mirage needs 0 < support_ratio < 1 and 0 < min_support <= 1")
    out, s = [], 1.0
    while s >= cfg.min_support - 1e-12:
        out.append(s)
        s *= cfg.support_ratio
    return out


def search_budget(miner: TreeSetMiner, shares: list[float], levels: list[float]) -> dict:
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
        if not pats:                                   # never a class left empty: refuse the set
            raise ValueError(f"mirage: class {c} has no tree-set frequent in it alone at any support level down to "
                             f"{levels[-1]:g} ({miner.sizes[c]} graphs; its trees rarely repeat in two graphs): lower "
                             "min_support, or bin node attributes into fewer labels (attr_bins)")
        chosen[c] = pats
    return {"patterns": chosen, "levels": idx, "over_budget": over}
