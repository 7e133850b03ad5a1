"""Leaderboards from one or more runs: ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.html``.

    python -m benchmarks.leaderboard runs/default [runs/other ...] [--out DIR]

One table per dataset, architecture and full evaluated configuration (every protocol field, the
step budget): records that differ in anything never average together, and a table's heading names
what sets it apart from its neighbours. Rows are methods at each IPC and resolved config, from the
newest code identity of each cell (``--all-versions`` shows the older ones, labelled). Columns give
accuracy mean ± std, n (sets × trainings), the 95 % interval, steps and samples seen, time-to-
accuracy at each target with and without teacher time (speedups against ``full`` only on matching
checkpoint grids), condense, teacher and train seconds, storage bytes and what training reads.
DD-Ranking scores (HLR, IOR, LRS, ARS) follow where their rows exist. Two records of the same cell,
seeds, configuration and code stop the leaderboard with an error naming both lines. The HTML page
embeds plots: accuracy against IPC, against time, and against storage bytes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from condense._log import note

from .report import build
from .report.records import DuplicateRecords
# The names scripts and tests read from here, now in benchmarks.report (one job a module).
from .report.records import load_records, measured_on, normalise  # noqa: F401
from .report.render import fmt_tta, markdown, write_csv  # noqa: F401
from .report.tables import aggregate, paper_aggregate  # noqa: F401

__all__ = ["DuplicateRecords", "aggregate", "build", "fmt_tta", "load_records", "main", "markdown", "measured_on",
           "normalise", "paper_aggregate", "write_csv"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.leaderboard", description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="run folders (or results.jsonl files)")
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: the first folder)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="time-to-accuracy on wall-clock seconds or on process CPU seconds (robust on a "
                         "shared machine for single-threaded runs)")
    ap.add_argument("--all-versions", action="store_true",
                    help="also show records from older code, as separate rows labelled with their code identity")
    args = ap.parse_args(argv)
    out = args.out or (args.dirs[0] if args.dirs[0].is_dir() else args.dirs[0].parent)
    try:
        md = build(args.dirs, out, with_plots=not args.no_plots, clock=args.clock, all_versions=args.all_versions)
    except DuplicateRecords as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        note(f"leaderboard files not written to {out} ({e.strerror or e}); printed only")
        md = build(args.dirs, None, clock=args.clock, all_versions=args.all_versions)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
