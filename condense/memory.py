"""Peak memory of one part of the work (a condensation, a teacher, a training run), beside its seconds.

On Linux a part's figure is the kernel's own high-water mark of this process's resident memory
(``VmHWM`` in ``/proc/self/status``), reset to the current level when the part starts (writing ``5``
to ``/proc/self/clear_refs``) and read when it ends: the exact peak, with no sampling thread and no
cost to the part's seconds. The part records that peak above its start (what it added) and the
absolute peak. Before the starting level is read, the C allocator hands its freed pages back to the
system (glibc's ``malloc_trim``): otherwise memory an earlier part freed but the allocator kept stays
resident, the next part reuses it without the level rising, and its growth reads near 0 (a sweep's
second run of a cell, or any run after a larger one). Where the mark cannot be reset (no ``/proc``, or not allowed), the figure is None
(unmeasured), never ``ru_maxrss`` of the whole process. On a CUDA device the part's figure is
``torch.cuda.max_memory_allocated`` since its start. A part marked ``exclusive`` (a teacher trained
inside a condensation) keeps its peak from the enclosing part, so a condensation's memory is reported
with its teachers apart; an enclosing part keeps the peak it reached before an inner part started.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

import torch

_active: list["PeakMemory"] = []     # meters running now, innermost last


def _status(key: str) -> int | None:
    """A ``/proc/self/status`` figure in bytes (None where it cannot be read)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_bytes() -> int | None:
    """This process's resident memory now (None where ``/proc`` is missing)."""
    return _status("VmRSS")


@functools.lru_cache(maxsize=1)
def _libc():
    """The C library when it is glibc (it has ``malloc_trim``), else None."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lib if hasattr(lib, "malloc_trim") else None
    except OSError:
        return None


def release_freed() -> None:
    """Give the pages the C allocator holds free back to the system, so resident memory is memory in use."""
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark to the current level (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """``with PeakMemory(device) as m: ...`` then ``m.record()``."""

    def __init__(self, device="cpu", exclusive: bool = False):
        self.device = torch.device(device)
        self.exclusive = exclusive
        self.start = self.peak = None
        self.cuda_peak = None

    def _fold(self) -> None:
        """Take in the high-water mark reached so far."""
        mark = _status("VmHWM")
        if self.peak is not None and mark is not None:
            self.peak = max(self.peak, mark)
        if self.cuda_peak is not None:
            self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated(self.device))

    def __enter__(self) -> "PeakMemory":
        for m in _active:   # the enclosing parts keep what they reached before this one resets the marks
            m._fold()
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats(self.device)
            self.cuda_peak = 0
        release_freed()
        self.start = rss_bytes() if _reset_peak() else None
        self.peak = self.start
        _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self._fold()
        _active.remove(self)
        if self.exclusive:   # the enclosing part goes on counting from here, without this part's peak
            release_freed()  # nor what this part freed and the allocator kept (all of it, on the heap: condense._alloc)
            _reset_peak()
            if self.cuda_peak is not None:
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
