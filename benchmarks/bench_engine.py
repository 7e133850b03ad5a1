"""pytest-benchmark cases that guard the evaluator against regressions: training steps on the engine
and a screened test curve, on CIFAR-10-shaped tensors (no dataset needed), ConvNet-3 as `dc` builds it.

    python -m pytest benchmarks/bench_engine.py --benchmark-columns=min,mean,max,rounds
    python -m pytest benchmarks/bench_engine.py --benchmark-compare   # against a saved run (--benchmark-autosave)
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from condense.curves import Curve, CurvePolicy
from condense.engine import Clock, Schedule, fit
from condense.models import create_model
from condense.protocols import get_protocol


def _model():
    torch.manual_seed(0)
    return create_model("convnet", (3, 32, 32), 10, **dict(get_protocol("dc").arch_kwargs))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_steps(benchmark, precision):
    """Ten optimizer steps of 100 images (IPC 10 under `dc`)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 3, 32, 32, generator=g), torch.randint(0, 10, (100,), generator=g)
    model = _model()
    sched = Schedule.from_protocol(get_protocol("dc"), passes=10, steps_per_pass=1)

    def ten_steps():
        fit(model, ((e, None) for e in range(10)), lambda _: F.cross_entropy(model(x), y), sched,
            clock=Clock(), precision=precision)

    benchmark.pedantic(ten_steps, rounds=3, warmup_rounds=1)


def test_screened_checkpoint(benchmark):
    """One screened checkpoint of an untrained model on 10,000 test images (placed below a 50 % target
    after the first 128 images)."""
    g = torch.Generator().manual_seed(1)
    test = torch.randn(10_000, 3, 32, 32, generator=g), torch.randint(0, 10, (10_000,), generator=g)
    model = _model()
    points = []

    def fresh():  # each round screens the first checkpoint of its own curve (a curve adapts its next read)
        return (Curve(test, (50.0,), CurvePolicy()),), {}

    benchmark.pedantic(lambda curve: points.append(curve.record(model, last=False)), setup=fresh, rounds=3,
                       warmup_rounds=1)
    assert all(p["on"] == "subset" and p["screened"] == 128 for p in points)
