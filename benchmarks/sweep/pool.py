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

from ..ray_executor import teacher_key, train_teachers

_DATA: dict = {}


def _start(threads: int, data: dict) -> None:
    torch.set_num_threads(threads)
    _DATA.update(data)


def _task(work, job, ctx, dataset: str):
    return work(job, ctx, _DATA[dataset])


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
