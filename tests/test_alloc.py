"""The C allocator setting of the suite's entry points (:mod:`condense._alloc`): large blocks stay on the
heap, so training steps stop faulting their activations in again; the numbers stay the same bit for bit,
and a part's peak memory still reads what it held. Each case runs in a fresh interpreter: the setting
is for a whole process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import REPO

STEPS = r"""
import json, resource, sys, torch, torch.nn.functional as F
from condense._alloc import keep_freed_memory, status
from condense.models import create_model
if sys.argv[1] == "heap":
    keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))   # 32 MiB activations: above glibc's mmap threshold
m = create_model("convnet", (3, 32, 32), 10)
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
losses = []
for i in range(6):
    if i == 2:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    opt.zero_grad()
    loss = F.cross_entropy(m(x), y)
    loss.backward()
    opt.step()
    losses.append(loss.item())
print(json.dumps({"status": status(), "losses": losses,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}))
"""

PARTS = r"""
import json, torch
from condense._alloc import keep_freed_memory
from condense.memory import PeakMemory
keep_freed_memory()
with PeakMemory() as first:
    buf = torch.ones(300 * 2 ** 20 // 4)
    del buf
with PeakMemory() as second:
    buf = torch.ones(200 * 2 ** 20 // 4)
    del buf
with PeakMemory() as outer:
    with PeakMemory(exclusive=True) as teacher:
        buf = torch.ones(100 * 2 ** 20 // 4)
        del buf
print(json.dumps({"first": first.growth, "second": second.growth, "teacher": teacher.growth, "outer": outer.growth}))
"""


def _run(code: str, *args, env=None) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_heap_blocks_give_the_same_losses_with_far_fewer_page_faults():
    default, heap = _run(STEPS, "default"), _run(STEPS, "heap")
    assert default["status"] == "default" and heap["status"] == "heap"
    assert heap["losses"] == default["losses"]            # bit for bit: only where the bytes live changed
    # 4 steps: by default every large activation is a fresh mapping, faulted in page by page (about
    # 8,000 faults per 32 MiB block); on the heap they are reused
    assert heap["faults"] * 5 < default["faults"], (heap["faults"], default["faults"])


def test_the_setting_can_be_declined():
    out = _run(STEPS, "heap", env={"CONDENSE_MALLOC": "default"})
    assert out["status"] == "default"


def test_a_part_after_a_larger_one_still_reads_what_it_held_on_the_heap():
    # the freed 300 MiB stay in the heap; the second part must not read ~0 by reusing them
    out = _run(PARTS)
    assert out["first"] >= 300 * 2 ** 20 - 4 * 2 ** 20
    assert out["second"] >= 200 * 2 ** 20 - 4 * 2 ** 20
    # a teacher's part inside a condensation's: its freed 100 MiB, kept by the heap, are not the condensation's
    assert out["teacher"] >= 100 * 2 ** 20 - 2 ** 20 and out["outer"] < 50 * 2 ** 20
