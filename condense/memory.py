"""Peak memory of one part of the work (a condensation, a teacher, a training run), beside its seconds.

On a CPU a thread samples the process's resident memory (``/proc/self/statm``) every few milliseconds
while the part runs; the part's figure is its peak above the level at its start (what the part added),
with the absolute peak beside it. Where ``/proc`` is missing, the figure is None (unmeasured), never
``ru_maxrss`` of the whole process. On a CUDA device the part's figure is
``torch.cuda.max_memory_allocated`` since its start. A part marked ``exclusive`` (a teacher trained
inside a condensation) owns the samples taken while it runs: they count for it and not for the
enclosing part, so a condensation's memory is reported with its teachers apart.
"""
from __future__ import annotations

import os
import threading

import torch

INTERVAL = 0.005                     # seconds between samples
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_active: list["PeakMemory"] = []     # meters running now, innermost last
_lock = threading.Lock()


def rss_bytes() -> int | None:
    """This process's resident memory now (None where ``/proc/self/statm`` is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """``with PeakMemory(device) as m: ...`` then ``m.record()``."""

    def __init__(self, device="cpu", exclusive: bool = False, interval: float = INTERVAL):
        self.device = torch.device(device)
        self.exclusive, self.interval = exclusive, interval
        self.start = self.peak = None
        self.cuda_peak = None

    def _owner(self) -> "PeakMemory | None":
        owners = [m for m in _active if m.exclusive]
        return owners[-1] if owners else None

    def _sample(self) -> None:
        v = rss_bytes()
        if v is None or self.peak is None:
            return
        with _lock:
            owner = self._owner()
        if owner is None or owner is self or _active.index(owner) < _active.index(self):
            self.peak = max(self.peak, v)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        cuda = self.device.type == "cuda" and torch.cuda.is_available()
        if cuda:   # the enclosing meters keep what they saw before this part resets the counter
            for m in _active:
                if m.device.type == "cuda":
                    m.cuda_peak = max(m.cuda_peak or 0, torch.cuda.max_memory_allocated(m.device))
            torch.cuda.reset_peak_memory_stats(self.device)
            self.cuda_peak = 0
        self.start = self.peak = rss_bytes()
        with _lock:
            _active.append(self)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()
        with _lock:
            _active.remove(self)
        if self.cuda_peak is not None:
            self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated(self.device))
            if self.exclusive:   # the enclosing part starts counting again after this one
                torch.cuda.reset_peak_memory_stats(self.device)

    @property
    def growth(self) -> int | None:
        """The part's peak resident memory above its start, in bytes (None: not measured)."""
        return None if self.start is None else max(0, self.peak - self.start)

    def record(self) -> dict:
        """What a set or a run records: ``rss_growth_bytes``, ``rss_peak_bytes`` and, on a GPU,
        ``cuda_peak_bytes``."""
        out = {"rss_growth_bytes": self.growth, "rss_peak_bytes": self.peak}
        if self.cuda_peak is not None:
            out["cuda_peak_bytes"] = int(self.cuda_peak)
        return out

