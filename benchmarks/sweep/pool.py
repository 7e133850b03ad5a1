"""``--jobs N``: the local executor with N worker processes, each with its share of the cores (torch
threads = the driver's threads ÷ N, at least one). Each set's work (condense unless cached, then its
pending runs) is one task; the driver stays the only writer of ``results.jsonl`` and of the set cache,
as with every executor, and commits each set as it finishes.

Each teacher of a pool is a task of its own, trained (or found in the cache) once by one worker even where
pools share it (INFER's four ConvNet-BNs are four of CV-DD's five); a set that needs teachers is submitted
when they are all done. Sets without teachers fill the workers meanwhile, so a pool no longer holds every
core idle while the driver trains it. At most N tasks are in flight, the next chosen when one ends:
teachers first, then the sets they unblocked (the long soft-label ones), then the rest in plan order.
Workers start by ``spawn`` and receive the datasets once, when they start (torch shares their tensors'
memory with the driver).
"""
from __future__ import annotations

import sys
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch
import torch.multiprocessing as mp
from tqdm.auto import tqdm

from condense._alloc import keep_freed_memory

from ..ray_executor import teacher_units, train_unit

_DATA: dict = {}


def _start(threads: int, data: dict) -> None:
    keep_freed_memory()
    torch.set_num_threads(threads)
    _DATA.update(data)


def _task(work, job, ctx, dataset: str):
    return work(job, ctx, _DATA[dataset])


def _teacher(unit: tuple, device: str) -> float:
    return train_unit(_DATA[unit[0]][0], unit, device)


#: ``--jobs 0`` runs one process per core from this many pending sets per core on. On an idle 2-core host the
#: main job (about 25 small sets) took 249 s in two single-threaded processes against 345 s in one with two
#: threads (1.39x), while a 3-set MNIST cell ran at 0.98x as two processes (the third set alone on one
#: thread at the end; 0.92x on an AVX-512 host) and 1.09x as three (``--jobs 3``: the kernel shares the
#: two cores among them to the end): results/bench-executors. Below the threshold one process stays the
#: default: a worker costs its start (torch's import, the datasets) on sweeps of small sets.
AUTO_SETS_PER_CORE = 4


def auto_jobs(pending_sets: int, cores: int | None = None) -> int:
    """How many processes ``--jobs 0`` uses for ``pending_sets`` sets: one per core when the sets are
    many enough to keep every core busy to the end, else 1."""
    cores = cores or torch.get_num_threads()
    return cores if cores > 1 and pending_sets >= AUTO_SETS_PER_CORE * cores else 1


def jobs_for(sweep, groups: dict) -> int:
    """``--jobs``, or for ``--jobs 0`` :func:`auto_jobs` of the sets with runs not done yet (imports run
    in the driver)."""
    if sweep.args.jobs or sweep.args.imports:
        return sweep.args.jobs or 1
    sweep.refresh()
    pending = 0
    for items in groups.values():
        first, _, condenser = items[0]
        train, code = sweep.data[first.dataset][0], type(condenser).code_identity()
        pending += any(sweep.pending({a: sweep.record_key(cell, train, condenser, a, code) for a in archs})
                       for cell, archs, _ in items)
    return auto_jobs(pending)


def threads_per_job(jobs: int) -> int:
    return max(1, torch.get_num_threads() // jobs)


class Queue:
    """Which task runs next: every teacher first (they gate the sets that need them), then the sets
    whose teachers are all done (the long soft-label ones), then the sets without teachers, each in plan
    order. ``needs`` maps a set to its teacher units."""

    def __init__(self, sets: list, needs):
        self.needs = {id(s): list(needs(s)) for s in sets}
        self.units = list(dict.fromkeys(u for s in sets for u in self.needs[id(s)]))
        self.free = [s for s in sets if not self.needs[id(s)]]
        self.blocked = [s for s in sets if self.needs[id(s)]]
        self.ready: list = []
        self.done: dict = {}       # teacher unit -> its error (None: trained or found cached)

    def __bool__(self) -> bool:
        return bool(self.units or self.ready or self.free)

    def pop(self) -> tuple[str, object]:
        """The next task, ``("teacher", unit)`` or ``("set", set)``."""
        if self.units:
            return "teacher", self.units.pop(0)
        return "set", (self.ready or self.free).pop(0)

    def teacher_done(self, unit, error: BaseException | None) -> list[tuple[object, BaseException]]:
        """Record a finished teacher; the sets it was the last to wait for become ready, and the sets
        with a failed teacher come back with its error (they never run)."""
        self.done[unit] = error
        failed = []
        for s in [s for s in self.blocked if all(u in self.done for u in self.needs[id(s)])]:
            self.blocked.remove(s)
            errors = [self.done[u] for u in self.needs[id(s)] if self.done[u] is not None]
            if errors:
                failed.append((s, errors[0]))
            else:
                self.ready.append(s)
        return failed


def run(sweep, groups: list, work, jobs: int) -> None:
    """Every set with pending runs as a task of a pool of ``jobs`` processes, each teacher it needs as a
    task before it (:class:`Queue`); results committed as they arrive. A worker that dies fails its set's
    runs (recorded), not the sweep; a teacher that fails fails the sets that need it."""
    ctx = sweep.context()
    todo = [job for job in map(sweep.set_job, groups) if job is not None]
    if not todo:
        return
    queue = Queue(todo, lambda job: teacher_units(job, job.first.dataset))
    data = {d: sweep.data[d] for d in {job.first.dataset for job in todo}}
    bar = tqdm(total=len(todo), desc=f"sets ({jobs} jobs)", disable=not sweep.progress, unit="set", file=sys.stderr)

    def fail(job, e: BaseException, where: str) -> None:
        trace = "".join(traceback.format_exception_only(type(e), e))[-2000:]
        print(f"FAILED {where} {job.first.label}: {type(e).__name__}: {e}", file=sys.stderr)
        sweep.commit(job, None, job.failed("executor", e, trace))
        bar.update(1)

    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_start,
                             initargs=(threads_per_job(jobs), data)) as ex:
        running: dict = {}
        while queue or running:
            while queue and len(running) < jobs:
                kind, what = queue.pop()
                fut = (ex.submit(_teacher, what, ctx.device) if kind == "teacher"
                       else ex.submit(_task, work, what, ctx, what.first.dataset))
                running[fut] = (kind, what)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                kind, what = running.pop(fut)
                error = fut.exception()
                if kind == "teacher":
                    if error is not None:
                        print(f"FAILED teacher {what[1]} of {what[0]}: {type(error).__name__}: {error}", file=sys.stderr)
                    for job, e in queue.teacher_done(what, error):
                        fail(job, e, "(its teacher)")
                elif error is not None:   # a worker that died: its runs are recorded as failed
                    fail(what, error, "in a worker")
                else:
                    sweep.commit(what, *fut.result())
                    bar.update(1)
    bar.close()
