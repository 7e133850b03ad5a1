"""Training steps with the C allocator as glibc sets it against large blocks kept on the heap
(:mod:`condense._alloc`), each side in a fresh process (the setting is for a whole process, and glibc
cannot be set back to its adaptive default once changed), alternating sides round by round.

Prints, per case, the median fp32 step (forward, backward, SGD) of the suite's ConvNet-3 on random
inputs, the minor page faults per step, and the ratio default / heap (above 1: the heap is faster).
Run with nothing else on the machine.

    python -m benchmarks.bench_allocator --cases 3x32x32:100 3x32x32:256 1x28x28:256 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.bench_evaluator import cpu_features

REPO = Path(__file__).resolve().parents[1]

STEP = r"""
import json, resource, statistics, sys, time, torch
from benchmarks.roofline import _step
from condense._alloc import keep_freed_memory, status
from condense.models import create_model
side, c, h, w, batch, threads, steps = sys.argv[1], *map(int, sys.argv[2:])
if side == "heap":
    keep_freed_memory()
torch.set_num_threads(threads)
torch.manual_seed(0)
x, y = torch.randn(batch, c, h, w), torch.randint(0, 10, (batch,))
m = create_model("convnet", (c, h, w), 10)
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, foreach=True)
times = []
for i in range(steps + 3):
    if i == 3:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = time.perf_counter()
    _step(m, opt, x, y)
    times.append(time.perf_counter() - t)
print(json.dumps({"status": status(), "step_s": statistics.median(times[3:]),
                  "faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps}))
"""


def one(side: str, shape, batch: int, threads: int, steps: int) -> dict:
    done = subprocess.run([sys.executable, "-c", STEP, side, *map(str, shape), str(batch), str(threads), str(steps)],
                          cwd=REPO, capture_output=True, text=True, check=True,
                          env={**os.environ, "CONDENSE_MALLOC": "default" if side == "default" else ""})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_allocator", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["3x32x32:100", "3x32x32:256", "1x28x28:256"],
                    help="CxHxW:BATCH per case")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.machine()} ({cpu_features()}), fp32; "
          f"{args.steps} steps per process, {args.rounds} rounds, median of the rounds' medians")
    print(f"{'case':>14} {'default ms':>11} {'heap ms':>8} {'faults/step default':>20} {'heap':>8} {'ratio':>6}")
    for case in args.cases:
        dims, batch = case.split(":")
        shape = tuple(int(v) for v in dims.split("x"))
        runs = {"default": [], "heap": []}
        for _ in range(args.rounds):
            for side in runs:
                runs[side].append(one(side, shape, int(batch), args.threads, args.steps))
        assert {r["status"] for r in runs["heap"]} == {"heap"}, "the heap setting did not take effect"
        ms = {s: 1000 * statistics.median(r["step_s"] for r in rs) for s, rs in runs.items()}
        faults = {s: statistics.median(r["faults_per_step"] for r in rs) for s, rs in runs.items()}
        print(f"{case:>14} {ms['default']:>11.0f} {ms['heap']:>8.0f} {faults['default']:>20,.0f} {faults['heap']:>8,.0f} "
              f"{ms['default'] / ms['heap']:>5.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
