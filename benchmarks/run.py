"""The benchmark sweep's command line (``python -m benchmarks.run``); the sweep lives in
:mod:`benchmarks.sweep` (spec, plan, worker, driver).

    python -m benchmarks.run --ipc 10                       # digits and MUTAG (both embedded)
    python -m benchmarks.run --datasets cifar10 --methods random --ipc 1 10 50 --seeds 0 1 2
    python -m benchmarks.run --config results/graph-mirage/sweep.toml     # a sweep file
    python -m benchmarks.run --executor ray --address HEAD:6379 ...        # on a Ray cluster
"""
from __future__ import annotations

import sys

# The names scripts and tests read from here (one job a module in benchmarks.sweep).
from condense._alloc import keep_freed_memory

from .provenance import machine  # noqa: F401
from .sweep.driver import FolderLock, Sweep, check_args, execute, main  # noqa: F401
from .sweep.plan import Cell, aug_variant, clean, parse_overrides, stable_hash, train_seed  # noqa: F401
from .sweep.spec import SweepSpec, build_parser, parse_args, read_sweep_file, sweep_specs  # noqa: F401
from .sweep.worker import clock_problems, complete, work_set  # noqa: F401

sweep_args = sweep_specs  # the older name

__all__ = ["Cell", "FolderLock", "Sweep", "SweepSpec", "aug_variant", "build_parser", "check_args", "clean", "clock_problems",
           "complete", "execute", "machine", "main", "parse_args", "parse_overrides", "read_sweep_file", "stable_hash",
           "sweep_args", "sweep_specs", "train_seed", "work_set"]

if __name__ == "__main__":
    keep_freed_memory()
    sys.exit(main())
