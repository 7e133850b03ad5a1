"""Time-to-accuracy, defined once (``docs/design.md`` §5); no dependency beyond the standard library.

The evaluator computes it for every run and stores it in the record; the report reads the stored
value, and recomputes it from a stored curve (older records, the CPU clock) through this same code.
"""
from __future__ import annotations

from typing import Sequence


def counts_for_crossing(point: dict) -> bool:
    """A point can be a crossing only when its accuracy is on the full test set (older records,
    which have no ``on`` field, were evaluated on the full set at every checkpoint)."""
    return point.get("on", "full") == "full"


def time_to_accuracy(curve: Sequence[dict], target: float, offset: float = 0.0,
                     clock: str = "train_seconds") -> float | None:
    """``offset`` + train seconds at the first checkpoint with ``acc >= target``; None if never.

    ``clock="cpu_seconds"`` reads the process CPU time instead of the wall clock (None when a curve
    does not carry it). Only points evaluated on the full test set count (:mod:`condense.curves`)."""
    for point in curve:
        if point["acc"] >= target and counts_for_crossing(point):
            return None if clock not in point else offset + point[clock]
    return None


def condense_offset(condense: float | None, teacher: float | None, include_teacher: bool = True) -> float | None:
    """What a TTA adds before training: the condense seconds, less the teacher pool's share without
    ``include_teacher``; None when a needed clock was not measured (no column mixes clocks)."""
    if condense is None or (not include_teacher and teacher is None):
        return None
    return condense - (0.0 if include_teacher else teacher)
