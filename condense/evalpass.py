"""How a CPU or GPU reads the test set: which images a model gets right, in batches sized for the
cache, in whichever memory layout is faster on this host (:mod:`condense.curves` evaluates through
it)."""
from __future__ import annotations

import copy
import math

import torch

from .engine import Clock

CPU_BATCH = 16                # images of 32×32 per forward pass on a CPU
CHANNELS_LAST_PIXELS = 28 * 28  # from this image size on, a CPU evaluates in the faster layout
PROBE_BATCHES = 2               # batches per timed round of the layout probe (3 rounds, the best kept)


def cpu_batch(pixels: int | None) -> int:
    """Images per forward pass on a CPU: 16 at 32×32, more for smaller images so that a batch's
    activations stay about the same size (256 at 8×8, where batches of 16 were 1.5x slower)."""
    if not pixels:
        return CPU_BATCH
    return max(CPU_BATCH, min(1024, CPU_BATCH * (1024 // pixels)))


_LAYOUTS: dict[tuple, dict] = {}  # faster_layout's measurements, one per model type and size, shape and batch


def faster_layout(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> dict:
    """Which memory layout evaluates ``model`` faster on this host: ``{"channels_last": bool,
    "ms_per_image": {"nchw": ..., "channels_last": ...}}``, measured once per process for each model
    type and size, input shape, batch and thread count (the kernels, not the weights, decide it).

    Each layout evaluates ``PROBE_BATCHES`` batches of ``x`` three times, interleaved after a warm-up
    batch; the best round counts. The probe reads 2 × 7 batches, a fraction of one full pass."""
    key = (type(model).__qualname__, sum(q.numel() for q in model.parameters()), tuple(x.shape[1:]), batch,
           torch.get_num_threads())
    if key not in _LAYOUTS:
        layouts = {"nchw": model, "channels_last": copy.deepcopy(model).to(memory_format=torch.channels_last)}
        k = PROBE_BATCHES * batch
        best = dict.fromkeys(layouts, math.inf)
        for m in layouts.values():
            correct(m, x[:batch], y[:batch], batch)
        for _ in range(3):
            for name, m in layouts.items():
                with Clock(x.device) as clock:
                    correct(m, x[:k], y[:k], batch)
                best[name] = min(best[name], clock.total)
        ms = {name: round(1000.0 * t / min(k, x.shape[0]), 4) for name, t in best.items()}
        _LAYOUTS[key] = {"channels_last": best["channels_last"] < best["nchw"], "ms_per_image": ms}
    return _LAYOUTS[key]


@torch.no_grad()
def correct(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32, dtype: str = "float32") -> torch.Tensor:
    """Which images ``model`` classifies correctly (a bool tensor) in eval mode; ``dtype="bfloat16"``
    runs the forward passes under autocast."""
    was = model.training
    model.eval()
    device_type = x.device.type if x.device.type in ("cpu", "cuda") else "cpu"
    out = []
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        for i in range(0, x.shape[0], batch_size):
            out.append(model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size])
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=y.device)
