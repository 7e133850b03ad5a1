"""Peak memory beside seconds: a part that holds a known buffer reports at least its size, a teacher's
memory is measured apart from the condensation around it, and records and tables carry both."""
from __future__ import annotations

import time

import torch

from condense.memory import PeakMemory
from condense.methods.base import Condenser
from condense.methods.baselines import RandomReal


class Holds200MB(Condenser):
    """A condenser that allocates and touches a 200 MiB buffer while it works, then frees it."""

    name = "holds-200mb"

    def _condense(self, train, ipc, *, seed, device, progress):
        buf = torch.ones(200 * 2 ** 20 // 4)     # 200 MiB of float32, every page written
        time.sleep(0.01)
        del buf
        return RandomReal()._condense(train, ipc, seed=seed, device=device, progress=progress)


def test_a_condenser_holding_200mb_reports_at_least_that(digits):
    s = Holds200MB().condense(digits["train"], 2, seed=0)
    # at least the buffer, within 1 MiB: the resident level at the start moves by some pages of its own
    assert s.extra["condense_memory"]["rss_growth_bytes"] >= 200 * 2 ** 20 - 2 ** 20
    assert s.extra["condense_memory"]["rss_peak_bytes"] >= s.extra["condense_memory"]["rss_growth_bytes"]


def test_an_exclusive_part_keeps_its_samples_from_the_enclosing_one():
    with PeakMemory() as outer:
        with PeakMemory(exclusive=True) as teacher:
            buf = torch.ones(100 * 2 ** 20 // 4)
            time.sleep(0.05)
            del buf
        time.sleep(0.02)
    assert teacher.growth >= 100 * 2 ** 20 - 2 ** 20
    assert outer.growth < 50 * 2 ** 20          # the teacher's 100 MiB are not the condensation's


def _hold_in_small_pieces(mib: int) -> list:
    """``mib`` MiB in 64 KiB tensors: below the allocator's mmap threshold, so they live on the heap."""
    return [torch.ones(2 ** 14) for _ in range(mib * 16)]


def test_a_part_after_a_larger_one_still_reports_what_it_holds():
    # the first part's heap pages are freed but kept by the C allocator; without handing them back at the
    # next part's start, that part reuses them, its resident level never rises and it reads near 0
    with PeakMemory() as first:
        held = _hold_in_small_pieces(300)
        del held
    with PeakMemory() as second:
        held = _hold_in_small_pieces(200)
        del held
    assert first.growth >= 300 * 2 ** 20 - 4 * 2 ** 20
    assert second.growth >= 200 * 2 ** 20 - 4 * 2 ** 20
