"""The device a run uses: resolved from a name in one line (or refused), and its kind, as tables and
resume keys group it."""
from __future__ import annotations

import torch


def device_kind(device) -> str:
    """The kind of device that measures a run, as tables and resume keys group it: ``cpu``, ``mps`` or
    ``cuda (the GPU's name)``: seconds from two kinds are never averaged or compared as one."""
    d = torch.device(device)
    if d.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(d)})"
    return d.type


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` (or None): the GPU when there is one, else the CPU. A device that is not here is a
    one-line ``ValueError`` before any work."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {str(device)!r} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r}: no CUDA GPU is available here; use --device cpu or auto")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif d.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device {str(device)!r}: MPS is not available here; use --device cpu or auto")
    elif d.type != "cpu":
        raise ValueError(f"device {str(device)!r}: the suite runs on cpu, cuda or mps")
    return d
