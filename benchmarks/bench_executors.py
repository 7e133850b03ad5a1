"""The same 12-cell digits sweep on the local executor and on Ray, in fresh folders: wall seconds, their
ratio, and whether the records agree (keys, accuracies and curves bit for bit).

    python -m benchmarks.bench_executors                       # local vs a local Ray instance (2 CPUs)
    python -m benchmarks.bench_executors --address HOST:PORT   # vs a running Ray cluster

Every process runs with one torch thread per cell (``OMP_NUM_THREADS=1``), so a local sweep uses one
core and Ray one per worker.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from condense import jsonl

REPO = Path(__file__).resolve().parent.parent
CELLS = ["--datasets", "digits", "--methods", "random", "herding", "--ipc", "1", "2", "5", "--seeds", "0", "1",
         "--no-progress"]


def sweep(out: Path, *extra: str) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", *CELLS, "--out", str(out), *extra], cwd=REPO,
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode:
        raise SystemExit(f"sweep {' '.join(extra) or 'local'} failed: {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t


def records(out: Path) -> dict:
    return {r["key"]: r for r in jsonl.read(out / "results.jsonl")[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_executors", description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", default=None, help="a running Ray cluster (default: a local instance)")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        local = sweep(d / "local")
        extra = ["--executor", "ray"] + (["--address", args.address] if args.address else ["--ray-cpus", str(args.ray_cpus)])
        ray = sweep(d / "ray", *extra)
        a, b = records(d / "local"), records(d / "ray")
        same = a.keys() == b.keys() and all(a[k]["acc"] == b[k]["acc"] and [c["acc"] for c in a[k]["curve"]] ==
                                            [c["acc"] for c in b[k]["curve"]] for k in a)
        where = f"cluster {args.address}" if args.address else f"local Ray instance, {args.ray_cpus} CPUs"
        print(f"{len(a)} cells: local {local:.1f} s, ray ({where}) {ray:.1f} s, local / ray = {local / ray:.2f}; "
              f"records identical: {same}")
        return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
