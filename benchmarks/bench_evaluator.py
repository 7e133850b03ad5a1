"""Seconds per model evaluation: ConvNet-3 under the DC protocol (300 epochs, no augmentation) on a
random IPC-10 set, for digits and CIFAR-10. The baseline that performance work improves on.

    python -m benchmarks.bench_evaluator [--datasets digits cifar10] [--epochs 300] [--device cpu]
"""
from __future__ import annotations

import argparse
import platform
import time

import torch


def main(argv=None) -> int:
    from condense.data import DatasetNotFoundError, load_dataset
    from condense.evaluate import evaluate, resolve_device
    from condense.methods import create_condenser
    from condense.protocols import get_protocol

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "cifar10"])
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--checkpoints", type=int, default=50)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"cpu={platform.processor() or platform.machine()}")
    print(f"{'dataset':<10} {'ipc':>4} {'epochs':>6} {'steps':>6} {'train s':>9} {'eval s':>8} {'total s':>8} "
          f"{'ms/step':>8} {'acc %':>6}")
    for name in args.datasets:
        try:
            train, test = load_dataset(name, "train"), load_dataset(name, "test")
        except DatasetNotFoundError as e:
            print(f"{name:<10} skipped: {str(e).splitlines()[0][:100]}")
            continue
        s = create_condenser("random").condense(train, args.ipc, seed=0)
        proto = get_protocol("dc", "quick", epochs=args.epochs, checkpoints=args.checkpoints)
        t0 = time.perf_counter()
        r = evaluate(s, test, seeds=[0], protocol=proto, device=device)
        total = time.perf_counter() - t0
        run = r.runs[0]
        print(f"{name:<10} {args.ipc:>4} {args.epochs:>6} {run.steps:>6} {run.train_seconds:>9.2f} "
              f"{run.eval_seconds:>8.2f} {total:>8.2f} {1000 * run.train_seconds / run.steps:>8.2f} "
              f"{run.final_acc:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
