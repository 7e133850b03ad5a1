"""Frequent itemsets by Eclat (Zaki, 2000) over bitset tidsets: every itemset whose support (the
transactions holding all its items) reaches ``minsup``, found depth-first by intersecting tidsets.
Generic: Mirage mines sets of computation trees with it (one transaction per graph)."""
from __future__ import annotations

import numpy as np

class TooManyItemsets(RuntimeError):
    """Mining produced more itemsets than the configured limit (the support is too low)."""



def bitsets(transactions: list[np.ndarray]) -> dict[int, int]:
    """Item -> Python-int bitset of the transactions that hold it (bit t: transaction t)."""
    if not transactions:
        return {}
    tid = np.repeat(np.arange(len(transactions)), [t.size for t in transactions])
    items = np.concatenate(transactions) if transactions else np.zeros(0, np.int64)
    uniq, inv = np.unique(items, return_inverse=True)
    mat = np.zeros((uniq.size, len(transactions)), dtype=bool)
    mat[inv.reshape(-1), tid] = True
    packed = np.packbits(mat, axis=1, bitorder="little")
    return {int(it): int.from_bytes(row.tobytes(), "little") for it, row in zip(uniq.tolist(), packed)}


def eclat(tidsets: dict[int, int], minsup: int, max_size: int | None = None,
          limit: int | None = None) -> list[tuple[tuple[int, ...], int]]:
    """Every itemset with support >= ``minsup`` (exact), as (sorted items, support).

    Depth-first Eclat on bitset tidsets: the support of an extension is the popcount of an AND.
    Raises :class:`TooManyItemsets` past ``limit`` itemsets.
    """
    minsup = max(1, int(minsup))
    items = [(it, t, t.bit_count()) for it, t in tidsets.items()]
    items = sorted([x for x in items if x[2] >= minsup], key=lambda x: (x[2], x[0]))
    out: list[tuple[tuple[int, ...], int]] = []

    def grow(prefix: tuple[int, ...], cands: list[tuple[int, int, int]]) -> None:
        for i, (it, t, sup) in enumerate(cands):
            itemset = prefix + (it,)
            out.append((tuple(sorted(itemset)), sup))
            if limit is not None and len(out) > limit:
                raise TooManyItemsets(f"more than {limit} frequent itemsets at support {minsup}")
            if max_size is not None and len(itemset) >= max_size:
                continue
            ext = []
            for it2, t2, _ in cands[i + 1:]:
                both = t & t2
                c = both.bit_count()
                if c >= minsup:
                    ext.append((it2, both, c))
            if ext:
                grow(itemset, ext)

    grow((), items)
    return out


def support(tidsets: dict[int, int], itemset: tuple[int, ...]) -> int:
    """Transactions holding every item of ``itemset``."""
    acc = None
    for it in itemset:
        t = tidsets.get(it)
        if t is None:
            return 0
        acc = t if acc is None else acc & t
    return 0 if acc is None else acc.bit_count()
