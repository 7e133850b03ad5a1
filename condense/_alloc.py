"""Where a training process's large blocks come from: the C heap, kept for reuse, instead of fresh mappings.

glibc serves an allocation above its mmap threshold (32 MiB at most) with a new mapping and unmaps it
when it is freed, so the activations of every training step are faulted in again page by page. On a
2-core AVX2 host a ConvNet-3 step (fp32, two threads, 32×32 images) took 423 ms at batch 100 with 2.4
million minor page faults over 25 steps, and 266 ms with 0.1 million once large blocks came from the
heap and stayed there; at batch 256, 1,351 ms against 737 ms (``benchmarks/bench_allocator.py``).

:func:`keep_freed_memory` sets that for the process: no mappings for large blocks (``M_MMAP_MAX`` 0) and
no trimming of the heap's top (``M_TRIM_THRESHOLD`` 2 GiB). It changes where bytes live, never what is
computed: the same seeds give the same numbers, bit for bit (``tests/test_alloc.py``). A part's peak
memory still reads what it held (:mod:`condense.memory` hands the free heap back before each part and
after an exclusive one, such as a teacher's inside a condensation).
The suite's entry points call it (``python -m condense``, ``benchmarks.run`` and its workers); a script
that trains through the library may call it once. ``CONDENSE_MALLOC=default`` leaves the allocator as
it is. On a C library without ``mallopt`` (not glibc) it does nothing and says so (False).

This module is plumbing for the code identity (``condense._sources.PLUMBING``): it cannot change a result.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes

_STATE: dict = {}


def keep_freed_memory() -> bool:
    """Configure the C allocator of this process as described above, once; True where it took effect."""
    if "on" not in _STATE:
        _STATE["on"] = _apply()
    return _STATE["on"]


def _apply() -> bool:
    if os.environ.get("CONDENSE_MALLOC", "") == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1


def status() -> str:
    """``"heap"`` where :func:`keep_freed_memory` took effect in this process, else ``"default"``."""
    return "heap" if _STATE.get("on") else "default"
