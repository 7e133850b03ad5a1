"""The ConvNet's pair-sum pooling against PyTorch's ``nn.AvgPool2d`` on a CPU, in one process.

A ConvNet-3 (width 128, instance norm) training step, forward, backward and SGD, on batches of 32×32
images, with :class:`condense.models.convnet.AvgPool2x2` (pair sums) and with DC's
``nn.AvgPool2d(2, 2)`` (the same weights), in fp32 and under bfloat16 autocast. The two networks
alternate round by round; each round times ``--steps`` steps and the median round counts. Prints
milliseconds per step and the ratio (``nn.AvgPool2d`` / pair sums: above 1, pair sums are faster).

    python -m benchmarks.bench_pooling --batches 10 100 --rounds 5
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.bench_evaluator import dc_network
from condense.models import create_model


def step_ms(model, x, y, precision: str, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    t0 = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return 1000.0 * (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=("bf16", "fp32"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'batch':>5} {'precision':>9} {'pair sums ms':>13} {'AvgPool2d ms':>13} {'ratio':>6}")
    for b in args.batches:
        for precision in args.precisions:
            torch.manual_seed(0)
            ours = create_model("convnet", (3, 32, 32), 10, width=128, norm="instancenorm")
            theirs = dc_network(copy.deepcopy(ours))
            x, y = torch.randn(b, 3, 32, 32), torch.randint(0, 10, (b,))
            times = {"ours": [], "theirs": []}
            for m in (ours, theirs):
                step_ms(m, x, y, precision, 2)  # warm-up
            for _ in range(args.rounds):
                for name, m in (("ours", ours), ("theirs", theirs)):
                    times[name].append(step_ms(m, x, y, precision, args.steps))
            a, t = statistics.median(times["ours"]), statistics.median(times["theirs"])
            print(f"{b:>5} {precision:>9} {a:>13.2f} {t:>13.2f} {t / a:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
