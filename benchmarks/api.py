"""The sweep as a Python API, for notebooks and scripts: the same spec as the command line.

    from benchmarks import run_sweep
    records = run_sweep(datasets=["digits"], methods=["random"], ipc=[1], seeds=[0], epochs=20,
                        out="runs/nb", no_progress=True)

:class:`SweepSpec` is the typed, frozen dataclass the command line is generated from (the same names,
``overrides`` for ``--set``, also as ``{"method": {"field": value}}``). :func:`run_sweep` runs it
exactly as ``python -m benchmarks.run`` would (resuming, recording failures, holding the folder's
lock) and returns the records of the cells the spec covers, old and new.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from condense import jsonl
from .sweep.driver import check_args, execute
from .sweep.spec import SweepSpec

__all__ = ["SweepSpec", "run_sweep"]


def run_sweep(spec: "SweepSpec | Mapping | None" = None, /, **fields) -> list[dict]:
    """Run a sweep given as a :class:`SweepSpec`, a mapping of its fields, or keywords (which win),
    and return its records (``status`` ok or failed), in file order."""
    values: dict = {}
    if isinstance(spec, SweepSpec):
        values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    elif isinstance(spec, Mapping):
        values = dict(spec)
    elif spec is not None:
        raise TypeError(f"run_sweep takes a SweepSpec or a mapping, got {type(spec).__name__}")
    values.update(fields)
    args = SweepSpec.from_mapping(values, "run_sweep")
    check_args(args)
    sweep = execute(args)
    if not sweep.results.exists():
        return []
    records, _ = jsonl.read(sweep.results)
    return [r for r in records if r.get("key") in sweep.keys]
