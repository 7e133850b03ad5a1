"""The same 12-cell digits sweep on the local executor and on Ray, in fresh folders: wall seconds, their
ratio, and whether the records agree (keys, accuracies and curves bit for bit).

    python -m benchmarks.bench_executors                       # local vs a local Ray instance (2 CPUs)
    python -m benchmarks.bench_executors --address HOST:PORT   # vs a running Ray cluster
    python -m benchmarks.bench_executors --jobs 2 [3 ...] [--dataset cifar10 --ipc 10]

``--jobs N [M ...]``: one 3-seed cell (random, dc quick at its defaults) as one process with every
thread against ``--jobs N`` (N processes of threads ÷ N, at least one), then ``--jobs M``, nothing
else changed; wall seconds and models per hour each way. Run it with nothing else on the machine.

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


def sweep(out: Path, *extra: str, cells=CELLS, threads: str | None = "1") -> float:
    """Wall seconds of one sweep of ``cells`` into ``out`` (``threads``: OMP_NUM_THREADS, None: the default)."""
    env = {**os.environ, **({"OMP_NUM_THREADS": threads} if threads else {})}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", *cells, "--out", str(out), *extra], cwd=REPO,
                       capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"sweep {' '.join(extra) or 'local'} failed: {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t


def records(out: Path) -> dict:
    return {r["key"]: r for r in jsonl.read(out / "results.jsonl")[0]}


def jobs_case(jobs: list[int], dataset: str, ipc: int, epochs: int | None) -> int:
    """One process with every thread against each ``--jobs N`` on the same 3-seed cell."""
    cell = ["--datasets", dataset, "--methods", "random", "--ipc", str(ipc), "--seeds", "0", "1", "2",
            "--no-progress", *(["--epochs", str(epochs)] if epochs else [])]
    times = {}
    with tempfile.TemporaryDirectory() as d:
        for n in (1, *jobs):
            out = Path(d) / f"jobs{n}"
            times[n] = sweep(out, "--jobs", str(n), cells=cell, threads=None)
            recs = records(out)
            print(f"--jobs {n}: {len(recs)} models in {times[n]:.1f} s wall = {3600 * len(recs) / times[n]:.1f} models "
                  f"per hour (threads per process: {sorted({r['machine']['torch_threads'] for r in recs.values()})})",
                  flush=True)
    for n in jobs:
        print(f"{dataset} IPC {ipc}, 3 seeds, {os.cpu_count()} cores: --jobs {n} / --jobs 1 throughput = "
              f"{times[1] / times[n]:.2f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_executors", description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", default=None, help="a running Ray cluster (default: a local instance)")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--jobs", type=int, nargs="+", default=None,
                    help="compare one process against this many (--jobs N), then each further count")
    ap.add_argument("--dataset", default="cifar10", help="--jobs: the cell's dataset")
    ap.add_argument("--ipc", type=int, default=10, help="--jobs: the cell's IPC")
    ap.add_argument("--epochs", type=int, default=None, help="--jobs: the protocol's epochs (default: its own)")
    args = ap.parse_args(argv)
    if args.jobs is not None:
        if min(args.jobs) < 2:
            ap.error("--jobs must be 2 or more")
        return jobs_case(args.jobs, args.dataset, args.ipc, args.epochs)
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
