"""Seconds to train a teacher pool on the engine, per teacher and in all, on both clocks.

Each dataset's pool is trained from scratch into a fresh, temporary teacher cache (the suite's own
cache is neither read nor written), so the figures are a cold pool's cost. With ``--before`` the
table adds the seconds that records of an earlier run hold for the same teachers (a results file
whose sets carry ``set_extra.teachers``), and the ratio before ÷ now per teacher.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_teachers --datasets mnist cifar10 --recipe quick \\
        --before results/infer/results.jsonl results/infer/cifar10/results.jsonl --json results/bench-teachers/pools.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from condense import jsonl
from condense.data import load_dataset
from condense.evaluate import resolve_device
from condense.teachers import QUICK_POOL, RECIPES, TeacherRecipe, teacher_pool


def recorded(paths) -> dict[tuple[str, str], dict]:
    """(dataset, arch) -> the first recorded teacher cost in results files (wall and CPU seconds)."""
    out: dict[tuple[str, str], dict] = {}
    for path in paths or ():
        with open(path) as f:
            lines = f.read().splitlines()
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            for t in (rec.get("set_extra") or {}).get("teachers") or []:
                key = (rec.get("dataset"), t.get("arch"))
                if key not in out and isinstance(t.get("train_seconds"), (int, float)):
                    out[key] = {"wall": t["train_seconds"], "cpu": t.get("cpu_seconds"), "key": t.get("key")}
    return out


def run_pool(dataset: str, archs, recipe_name: str, device, root=None) -> list[dict]:
    train = load_dataset(dataset, "train", root=root)
    recipe = TeacherRecipe.preset(recipe_name)
    rows = []
    for arch in archs:
        t0, c0 = time.perf_counter(), time.process_time()
        (t,) = teacher_pool(train, [arch], recipe, device=device)
        rows.append({"dataset": dataset, "arch": arch, "recipe": recipe_name, "key": t.key,
                     "train_seconds": t.train_seconds, "cpu_seconds": t.cpu_seconds,
                     "call_seconds": time.perf_counter() - t0, "call_cpu_seconds": time.process_time() - c0,
                     "val_acc": t.val_acc, "device": str(device), "threads": torch.get_num_threads(),
                     "torch": torch.__version__, "cpu": platform.processor() or platform.machine()})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    ap.add_argument("--archs", nargs="+", default=list(QUICK_POOL))
    ap.add_argument("--recipe", choices=RECIPES, default="quick")
    ap.add_argument("--before", nargs="+", default=[], help="results.jsonl files whose sets recorded the same teachers' seconds")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", help="append one JSON line per teacher to this file")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    before = recorded(args.before)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} recipe={args.recipe}")
    print(f"{'dataset':<9} {'teacher':<16} {'val %':>6} {'wall s':>8} {'cpu s':>8} {'before wall':>11} "
          f"{'before cpu':>10} {'cpu ×':>6}")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CONDENSE_CACHE"] = cache  # a cold pool: nothing read from or left in the suite's cache
        for dataset in args.datasets:
            rows = run_pool(dataset, args.archs, args.recipe, device)
            for r in rows:
                b = before.get((dataset, r["arch"]), {})
                r["before"] = b or None
                ratio = b["cpu"] / r["cpu_seconds"] if b.get("cpu") and r["cpu_seconds"] else None
                print(f"{dataset:<9} {r['arch']:<16} {r['val_acc']:>6.2f} {r['train_seconds']:>8.1f} "
                      f"{r['cpu_seconds']:>8.1f} {b.get('wall', float('nan')):>11.1f} "
                      f"{(b.get('cpu') or float('nan')):>10.1f} {(ratio or float('nan')):>6.2f}", flush=True)
                if args.json:
                    jsonl.append(Path(args.json), r)
            wall, cpu = sum(r["train_seconds"] for r in rows), sum(r["cpu_seconds"] for r in rows)
            bw = sum(before[(dataset, r["arch"])]["wall"] for r in rows if (dataset, r["arch"]) in before)
            bc = sum(before[(dataset, r["arch"])]["cpu"] or 0 for r in rows if (dataset, r["arch"]) in before)
            print(f"{dataset:<9} {'pool':<16} {'':>6} {wall:>8.1f} {cpu:>8.1f} {bw:>11.1f} {bc:>10.1f} "
                  f"{(bc / cpu if bc and cpu else float('nan')):>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
