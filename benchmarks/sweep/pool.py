"""``--jobs N``: the local executor with N worker processes, each with its share of the cores (torch
threads = the driver's threads ÷ N, at least one). Each set's work (condense unless cached, then its
pending runs) is one task; the driver stays the only writer of ``results.jsonl`` and of the set cache,
as with every executor, and commits each set as it finishes.

Teacher pools are trained (or found in the cache) first, in the driver, with all its threads, so that
two workers never train one pool twice. Workers start by ``spawn`` and receive the datasets once, when
they start (torch shares their tensors' memory with the driver).
"""
from __future__ import annotations

import sys
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch
import torch.multiprocessing as mp
from tqdm.auto import tqdm

from condense._alloc import keep_freed_memory

from ..ray_executor import teacher_key, train_teachers

_DATA: dict = {}


def _start(threads: int, data: dict) -> None:
    keep_freed_memory()
    torch.set_num_threads(threads)
    _DATA.update(data)


def _task(work, job, ctx, dataset: str):
    return work(job, ctx, _DATA[dataset])


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


def run(sweep, groups: list, work, jobs: int) -> None:
    """Every set with pending runs as a task of a pool of ``jobs`` processes; results committed as they
    arrive. A worker that dies fails its set's runs (recorded), not the sweep."""
    ctx = sweep.context()
    todo, pools = [], set()
    for items in groups:
        job = sweep.set_job(items)
        if job is None:
            continue
        key = teacher_key(job.condenser, job.first.dataset) if job.cached is None else None
        if key is not None and key not in pools:   # before any worker starts: one pool, trained once
            train_teachers(sweep.data[job.first.dataset], job.condenser.config, ctx.device, torch.get_num_threads())
            pools.add(key)
        todo.append(job)
    if not todo:
        return
    data = {d: sweep.data[d] for d in {job.first.dataset for job in todo}}
    bar = tqdm(total=len(todo), desc=f"sets ({jobs} jobs)", disable=not sweep.progress, unit="set", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_start,
                             initargs=(threads_per_job(jobs), data)) as ex:
        pending = {ex.submit(_task, work, job, ctx, job.first.dataset): job for job in todo}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                try:
                    synset, records = fut.result()
                except Exception as e:  # noqa: BLE001 - a worker that died: its runs are recorded as failed
                    trace = "".join(traceback.format_exception_only(type(e), e))[-2000:]
                    synset, records = None, job.failed("executor", e, trace)
                    print(f"FAILED in a worker {job.first.label}: {type(e).__name__}: {e}", file=sys.stderr)
                sweep.commit(job, synset, records)
                bar.update(1)
    bar.close()
