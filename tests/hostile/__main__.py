"""``python -m tests.hostile``: every case (or ``--only`` some), then the table of outcomes."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from . import CASES, report, run_case
from .api import _api


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["api"]:
        return _api(argv[1], argv[2:])
    ap = argparse.ArgumentParser(prog="python -m tests.hostile", description="hostile inputs and their outcomes")
    ap.add_argument("--only", nargs="+", default=None, help="run only these cases")
    ap.add_argument("--work", type=Path, default=None, help="folder for the cases (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON lines")
    args = ap.parse_args(argv)
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="hostile-"))
    names = args.only or list(CASES)
    results = []
    for name in names:
        r = run_case(name, work / name)
        results.append(r)
        rss = f"{r.rss_mb:6.0f} MB" if r.rss_mb is not None else "      —"
        print(f"{name:<34} {r.outcome:<13} {r.seconds:6.1f} s {rss}  {r.detail[:150]}", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(r.__dict__) + "\n")
    print()
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

