"""Where one training step of a student goes: ``python -m benchmarks.profile_step [--arch convnet]``.

One optimizer step (SGD, cross-entropy) of a freshly initialised model on a random batch, profiled
with ``torch.profiler`` eagerly and, unless ``--no-compile``, through ``torch.compile``: seconds per
step, GFLOP/s (the step's FLOPs from :func:`benchmarks.roofline.step_flops`), and the seconds per step
of each operator group — convolution forward, convolution backward, normalisation, activation,
pooling, copies, the compiled graphs' own fused kernels, the rest. The question it answers is the
evaluator issue's: what of an fp32 step is not convolution, and what compiling removes.
"""
from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict

import torch

from condense.models import create_model

from .bench_evaluator import cpu_features
from .roofline import _step, step_flops

GROUPS = (("conv backward", ("convolution_backward",)),     # first: its name holds the forward's
          ("conv forward", ("mkldnn_convolution", "aten::convolution", "aten::_convolution", "conv2d")),
          ("normalisation", ("group_norm", "batch_norm", "native_batch_norm")),
          ("activation", ("threshold", "relu", "clamp")),
          ("pooling", ("pool", "_PairMean", "_PairSpread")),
          ("copies", ("aten::copy_", "aten::clone", "aten::contiguous")),
          ("compiled graph (fused)", ("CompiledFxGraph",)))


def group_of(name: str) -> str:
    for group, keys in GROUPS:
        if any(k in name for k in keys):
            return group
    return "rest"


def profile(arch: str, shape, batch: int, compile: bool, steps: int) -> dict:
    torch.manual_seed(0)
    model = create_model(arch, shape, 10)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    fwd = torch.compile(model) if compile else model

    def step():
        _step(fwd, opt, x, y)

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - t0) / steps
    with torch.profiler.profile() as prof:
        for _ in range(steps):
            step()
    groups: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        groups[group_of(ev.key)] += ev.self_cpu_time_total / 1e6 / steps
    return {"first": first, "per_step": per_step, "groups": dict(groups)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="convnet")
    ap.add_argument("--shape", type=int, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"))
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args(argv)
    shape = tuple(a.shape)
    torch.manual_seed(0)
    flops = step_flops(create_model(a.arch, shape, 10), torch.randn(a.batch, *shape), torch.randint(0, 10, (a.batch,)))
    print(f"{a.arch} {shape} batch {a.batch}, fp32, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{platform.machine()} features={cpu_features()}; {flops / 1e9:.2f} GFLOP per step", flush=True)
    modes = [False] + ([] if a.no_compile else [True])
    names = [g for g, _ in GROUPS if g != "conv backward"][:1] + ["conv backward"] + \
        [g for g, _ in GROUPS if g not in ("conv forward", "conv backward")] + ["rest"]
    print(f"{'mode':<8} {'first s':>8} {'ms/step':>8} {'GFLOP/s':>8}  " + "  ".join(f"{n} ms" for n in names))
    for c in modes:
        r = profile(a.arch, shape, a.batch, c, a.steps)
        print(f"{'compiled' if c else 'eager':<8} {r['first']:8.1f} {r['per_step'] * 1e3:8.0f} "
              f"{flops / r['per_step'] / 1e9:8.1f}  " + "  ".join(f"{r['groups'].get(n, 0.0) * 1e3:.0f}" for n in names),
              flush=True)


if __name__ == "__main__":
    main()
