"""The ``ray`` executor of the sweep: each set's work (condense unless cached, then its pending runs)
is one Ray task; the driver stays the only writer of ``results.jsonl`` and of the set cache.

    python -m benchmarks.run --executor ray ...                    # a local Ray instance, this machine's cores
    ray start --head --num-cpus 8                                  # or a cluster: the head ...
    ray start --address HEAD:6379 --num-cpus 8                     # ... and each worker node
    python -m benchmarks.run --executor ray --address HEAD:6379 ...

Resumption, failed-cell records and code identity are the local executor's: the driver plans the
same cells with the same keys, skips those done, and commits each finished set as it arrives. A
teacher pool (INFER) is trained once, by a task that the cells needing it depend on, into the shared
teacher cache; workers on other machines need the same ``$CONDENSE_DATA`` and ``$CONDENSE_CACHE``
paths (a shared file system). Ray is optional: ``pip install -e ".[ray]"``.
"""
from __future__ import annotations

import os
import socket
import sys
import traceback
from pathlib import Path

import torch
from tqdm.auto import tqdm

from condense._alloc import keep_freed_memory
from condense.evaluate import resolve_device
from condense.teachers import TeacherRecipe, train_teacher

REPO = Path(__file__).resolve().parent.parent
PASSED_ENV = ("CONDENSE_DATA", "CONDENSE_CACHE", "CONDENSE_DOWNLOAD", "OMP_NUM_THREADS")


def require_ray():
    try:
        import ray  # an optional extra (pip install -e '.[ray]'): imported only when asked for
    except ImportError:
        raise ValueError('the ray executor needs Ray: pip install -e ".[ray]"') from None
    return ray


def probe(address: str, timeout: float = 5.0) -> None:
    """A one-line error within ``timeout`` seconds when a ``HOST:PORT`` (or ``ray://HOST:PORT``) address
    does not answer, before Ray's own connection retries (which take minutes)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"ray address {address!r} must be HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"ray address {address} does not answer ({e.strerror or e}); start the head with "
                         "`ray start --head` or leave --address out for a local instance") from None


def connect(address: str | None, num_cpus: int | None) -> None:
    """Join the cluster at ``address``, or start a local instance with ``num_cpus`` (default: all)."""
    ray = require_ray()
    if ray.is_initialized():
        return
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    kw = dict(include_dashboard=False, log_to_driver=True, runtime_env={"env_vars": env}, logging_level="ERROR")
    if address:  # check_args has probed it
        ray.init(address=address, **kw)
    else:
        ray.init(num_cpus=num_cpus, **kw)


def teacher_key(condenser, dataset: str):
    """What identifies the teacher pool a condenser trains (None: it uses no teachers)."""
    cfg = condenser.config
    if not all(hasattr(cfg, k) for k in ("teachers", "teacher_recipe", "teacher_seed")):
        return None
    return dataset, tuple(cfg.teachers), cfg.teacher_recipe, cfg.teacher_seed


def teacher_units(job, dataset: str) -> list[tuple]:
    """The teachers a set's condensation needs, one ``(dataset, arch, recipe, seed)`` each (none when
    the set is cached or its condenser uses no teachers). Pools that share a teacher share its unit, so
    an executor trains it once."""
    key = teacher_key(job.condenser, dataset) if job.cached is None else None
    if key is None:
        return []
    _, archs, recipe, seed = key
    return [(dataset, arch, recipe, seed) for arch in archs]


def train_unit(train, unit: tuple, device: str, threads: int | None = None) -> float:
    """Train (or find cached) one teacher unit on the training split; its validation accuracy."""
    if threads:
        torch.set_num_threads(threads)
    _, arch, recipe, seed = unit
    return train_teacher(train, arch, TeacherRecipe.preset(recipe), seed=seed, device=resolve_device(device)).val_acc


def _train_unit(data, unit: tuple, device: str, threads: int) -> float:
    return train_unit(data[0], unit, device, threads)


def _task(work, job, ctx, data, threads: int, *after):
    """One set's work on a worker (``after``: the teacher-pool tasks it waits for)."""
    keep_freed_memory()
    torch.set_num_threads(threads)
    return work(job, ctx, data)


def run(sweep, groups: list, work) -> None:
    """Submit every set with pending runs as a task and commit results as they finish (no Ray instance is
    started or joined when no set has a pending run)."""
    ray = require_ray()
    args = sweep.args
    jobs = [job for job in map(sweep.set_job, groups) if job is not None]
    if not jobs:   # a finished sweep resumed: nothing to submit, so no Ray instance to start
        return
    connect(args.address, args.ray_cpus)
    threads = max(1, int(args.cpus_per_cell))
    task = ray.remote(_task).options(num_cpus=args.cpus_per_cell, num_gpus=args.gpus_per_cell, max_retries=0)
    teachers = ray.remote(_train_unit).options(num_cpus=args.cpus_per_cell, num_gpus=args.gpus_per_cell, max_retries=0)
    ctx = sweep.context()
    data, pools, pending = {}, {}, {}
    for job in jobs:
        ds = job.first.dataset
        if ds not in data:
            data[ds] = ray.put(sweep.data[ds])
        after = []
        for unit in teacher_units(job, ds):   # each teacher one task, shared by every pool that has it
            if unit not in pools:
                pools[unit] = teachers.remote(data[ds], unit, ctx.device, threads)
            after.append(pools[unit])
        pending[task.remote(work, job, ctx, data[ds], threads, *after)] = job
    bar = tqdm(total=len(pending), desc="sets (ray)", disable=not sweep.progress, unit="set", file=sys.stderr)
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ref)
        try:
            synset, records = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a lost worker or a teacher task that failed
            cause = getattr(e, "cause", None) or e
            trace = "".join(traceback.format_exception_only(type(cause), cause))[-2000:]
            synset, records = None, job.failed("executor", cause, trace)
            print(f"FAILED on ray {job.first.label}: {type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}",
                  file=sys.stderr)
        sweep.commit(job, synset, records)
        bar.update(1)
    bar.close()
