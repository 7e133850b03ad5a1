"""The leaderboard's columns, shared by the Markdown and the page: a compact set a reader sees first
(rank, IPC, method, accuracy ± 95 % CI, n, time-to-accuracy at the middle target, storage, condense
seconds, peak memory) and the long set behind it (std, steps, the other targets, train seconds, what
training reads, byte matches, the published band). Each column has its text, a sort key and the
direction that is better; ranks tie where 95 % intervals overlap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .cells import fmt_bytes, fmt_memory, fmt_n, fmt_parts, fmt_published, fmt_seconds, fmt_steps, fmt_tta, match_cell
from .records import cut, is_reference

FULL_MARK = "†"
BELOW_MARK = "‡"   # does not beat the node-count reference beyond its 95 % CI


@dataclass(frozen=True)
class Column:
    """One column: ``text(row)`` its cell, ``key(row)`` its sort key (None sorts last), ``better`` which
    way is better ("max", "min" or None: no best is marked), ``compact`` whether it is shown by default."""

    id: str
    title: str
    text: Callable[[dict], str]
    key: Callable[[dict], object]
    better: str | None = None
    compact: bool = True


def method_text(a: dict) -> str:
    return cut(a["method_label"]) + (" (released)" if a.get("released") else "") \
        + (f" {FULL_MARK}" if a["touches_full_data"] else "") + (f" {BELOW_MARK}" if a.get("below_node_count") else "")


def acc_ci_text(a: dict) -> str:
    if a.get("stopped_early"):
        return f"stopped at targets ({a['mean']:.2f})"
    return f"{a['mean']:.2f}" + ("" if a["ci95"] is None else f" ± {a['ci95']:.2f}")


def _roc(a: dict) -> str:
    if a["roc_auc"] is None:
        return "—"
    std = a.get("roc_auc_std")
    return f"{a['roc_auc']:.1f}" + (f" ± {std:.1f}" if std is not None and a["n"] > 1 else "")


def _tta_key(a: dict, t: str):
    v = a["tta"].get(t) or {}
    return None if v.get("unmeasured") or v.get("mean") is None else v["mean"]


def _tta_text(a: dict, t: str) -> str:
    v = a["tta"].get(t)
    return "—" if v is None else fmt_tta(v, a.get("speedup", {}).get(t), a["tta_no_teacher"].get(t))


def _memory_key(a: dict):
    vals = [a.get(k) for k in ("condense_memory", "train_memory") if a.get(k) is not None]
    return max(vals) if vals else None


def middle_target(rows: list[dict]) -> str | None:
    targets = rows[0]["targets"] if rows else []
    return f"{targets[len(targets) // 2]:g}" if targets else None


def columns(rows: list[dict]) -> list[Column]:
    """The columns of a table of ``rows``, compact ones first (ROC-AUC only where a row has it)."""
    mid = middle_target(rows)
    targets = [f"{t:g}" for t in (rows[0]["targets"] if rows else [])]
    cols = [Column("rank", "rank", lambda a: a.get("rank_text", "—"), lambda a: a.get("rank")),
            Column("ipc", "IPC", lambda a: "all" if not a["ipc"] else str(a["ipc"]), lambda a: a["ipc"] or 10 ** 9),
            Column("method", "method", method_text, lambda a: a["method_label"].lower()),
            Column("acc", "acc % ± 95 % CI", acc_ci_text, lambda a: a["mean"], "max")]
    if any(a["roc_auc"] is not None for a in rows):
        cols.append(Column("roc", "ROC-AUC %", _roc, lambda a: a["roc_auc"], "max"))
    cols.append(Column("n", "n", fmt_n, lambda a: a["n"]))
    if mid is not None:
        cols.append(Column(f"tta{mid}", f"TTA@{mid}% s", lambda a: _tta_text(a, mid), lambda a: _tta_key(a, mid), "min"))
    cols += [Column("storage", "storage", lambda a: fmt_bytes(a["bytes"]), lambda a: a["bytes"], "min"),
             Column("condense", "condense s (teacher s)", lambda a: fmt_seconds(a["condense_seconds"]) + (
                 f" ({fmt_seconds(a['teacher_seconds'])})" if a["teacher_seconds"] else ""),
                 lambda a: a["condense_seconds"], "min"),
             Column("memory", "peak memory: condense / train", fmt_memory, _memory_key, "min")]
    # the long set
    cols += [Column("std", "acc % mean ± std", lambda a: f"{a['mean']:.2f} ± {a['std']:.2f}", lambda a: a["std"],
                    compact=False),
             Column("steps", "steps (samples)", fmt_steps, lambda a: a["steps"], compact=False)]
    cols += [Column(f"tta{t}", f"TTA@{t}% s", lambda a, t=t: _tta_text(a, t), lambda a, t=t: _tta_key(a, t), "min",
                    compact=False) for t in targets if t != mid]
    cols += [Column("train", "train s", lambda a: fmt_seconds(a["train_seconds"]), lambda a: a["train_seconds"], "min",
                    compact=False),
             Column("parts", "storage parts", lambda a: fmt_parts(a.get("parts", {})).strip(" ()") or "—",
                    lambda a: None, compact=False),
             Column("reads", "training reads", _reads, lambda a: a["reads"], compact=False)]
    if any(a.get("byte_match") for a in rows):
        cols.append(Column("match", "random at ≈ bytes: acc % (IPC, its bytes ×)", match_cell,
                           lambda a: (a.get("byte_match") or {}).get("mean"), compact=False))
    if any(a.get("published") for a in rows):
        cols.append(Column("published", "published (band)", fmt_published, lambda a: None, compact=False))
    return cols


def _reads(a: dict) -> str:
    if a["reads"] is not None:
        return fmt_bytes(a["reads"])
    return "the full split" if a["touches_full_data"] else fmt_bytes(a["bytes"])


def add_ranks(rows: list[dict]) -> None:
    """Rank the rows of each IPC by accuracy, with ties: a row's rank is 1 + the number of rows of the
    same IPC whose 95 % interval lies wholly above its own (a run without an interval is its mean). A rank
    shared with another row reads "2=". The whole-split reference (``full``) is ranked on its own."""
    groups: dict[object, list[dict]] = {}
    for a in rows:
        groups.setdefault("full" if is_reference(a) else a["ipc"], []).append(a)
    for same in groups.values():
        for a in same:
            lo_a, hi_a = _interval(a)
            a["rank"] = 1 + sum(1 for b in same if b is not a and _interval(b)[0] > hi_a)
        for a in same:
            tied = sum(1 for b in same if b["rank"] == a["rank"]) > 1
            a["rank_text"] = f"{a['rank']}=" if tied else str(a["rank"])


def _interval(a: dict) -> tuple[float, float]:
    h = a["ci95"] or 0.0
    return a["mean"] - h, a["mean"] + h


def best_marks(rows: list[dict], cols: list[Column]) -> dict[str, set[int]]:
    """Per column with a direction, the indices of the rows holding its best value (ties all marked).
    The whole-split reference never counts; a column needs two candidate rows for a best."""
    out = {}
    for c in cols:
        if c.better is None:
            continue
        vals = [(i, c.key(a)) for i, a in enumerate(rows) if not is_reference(a)]
        vals = [(i, v) for i, v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
        if len(vals) < 2:
            continue
        best = (max if c.better == "max" else min)(v for _, v in vals)
        marked = {i for i, v in vals if abs(v - best) <= 1e-9 * max(1.0, abs(best))}
        if len(marked) < len(vals):   # a column where every row ties has no best
            out[c.id] = marked
    return out
