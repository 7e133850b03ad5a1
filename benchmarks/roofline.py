"""Where one training step of a student goes: its floating-point operations (forward and backward,
counted by :class:`torch.utils.flop_counter.FlopCounterMode`), the share of its time spent in
convolutions against everything else (normalisation, activations, pooling, their backward passes,
gradient fills, the optimizer; from :mod:`torch.profiler`), and the achieved GFLOP/s. The evaluator
bench prints these per case beside its ratios, so a speed claim says how far it is from the
hardware's floor.
"""
from __future__ import annotations

import os

os.environ.setdefault("KINETO_LOG_LEVEL", "5")   # the profiler's own start/stop lines stay off the bench's output

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

#: profiler events that are convolution work (forward, backward, oneDNN and cuDNN kernels)
CONV_OPS = ("aten::convolution", "aten::convolution_backward")


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Floating-point operations of one forward and backward pass on the batch ``x`` (the optimizer's
    few per parameter are left out, as rooflines count them)."""
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def conv_share(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 5) -> float | None:
    """The fraction of a training step's operator time inside convolutions (forward and backward, their
    kernels included), over ``steps`` profiled SGD steps after one warm-up step; on a GPU, of device time.
    The denominator is every operator's self time, so the two add up to the step's operator time."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    _step(model, opt, x, y)
    cuda = x.is_cuda
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for _ in range(steps):
            _step(model, opt, x, y)
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    self_attr, incl_attr = (("self_device_time_total", "device_time_total") if cuda
                            else ("self_cpu_time_total", "cpu_time_total"))
    total = sum(getattr(e, self_attr) for e in events)
    conv = sum(getattr(e, incl_attr) for e in events if e.key in CONV_OPS)
    return min(1.0, conv / total) if total > 0 else None


def roofline(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, train_seconds_per_step: float,
             steps: int = 5) -> dict:
    """FLOPs per step, achieved GFLOP/s at the measured seconds per step, and the fraction of a step
    outside convolutions."""
    flops = step_flops(model, x, y)
    share = conv_share(model, x, y, steps)
    return {"step_gflop": flops / 1e9, "achieved_gflops": flops / 1e9 / train_seconds_per_step,
            "outside_conv_fraction": None if share is None else 1.0 - share}
