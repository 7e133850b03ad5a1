"""Where and with what a record was made: the package versions, and the machine of the process that
measured it (on a Ray cluster the worker, not the driver)."""
from __future__ import annotations

import os
import platform

import h5py
import numpy
import torch

import condense
from condense._alloc import status as allocator_status
from condense.devices import device_kind


def versions() -> dict:
    out = {"condense": condense.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
           "h5py": h5py.__version__, "python": platform.python_version()}
    for mod in ("torchvision", "kornia", "torch_geometric"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - optional at record time
            pass
    return out


def machine(device) -> dict:
    """Where a run is measured, filled in the process that measures it (a Ray worker's own, not the
    driver's): the device and its kind, the host, the process, CPUs, torch threads, platform, and where the
    C allocator puts large blocks (``heap`` or ``default``: :mod:`condense._alloc`; it moves seconds and the
    resident peak, never a result)."""
    info = {"device": str(device), "device_kind": device_kind(device), "host": platform.node(), "pid": os.getpid(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(terse=True), "allocator": allocator_status()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
