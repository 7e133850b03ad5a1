"""The driver of a sweep: holds the results folder, plans the cells, hands each set to the local or
Ray worker, and is the only writer of ``results.jsonl``; then prints the leaderboard."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import filelock
import torch
from tqdm.auto import tqdm

import condense
from condense import jsonl
from condense._log import one_line, say
from condense._paths import atomic_write, unwritable
from condense.data import IMAGE_DATASETS, dataset_kind
from condense.__main__ import save_set
from condense.evaluate import resolve_device
from condense.identity import identity_key
from condense.methods import condenser_class, create_condenser
from condense.methods.imported import register_release
from condense.models import create_model, model_kind
from condense.protocols import get_protocol
from condense.structure import structure_records

from .. import ray_executor
from ..provenance import machine, versions
from ..ray_executor import probe, require_ray
from ..report import build
from ..report.records import canon
from . import pool
from .plan import Cell, Planner, clean, nothing_to_run, stable_hash
from .spec import DEFAULT_DATASETS, SweepSpec, cell_command, sweep_specs
from .worker import SetJob, WorkContext, work_set


def cached_mismatch(s, cell: Cell, train, cfg: dict, code: dict) -> str | None:
    """Why a cached set is not this cell's set (None when it is): its method, source (name and
    fingerprint), IPC, set seed, resolved config and condenser code must all be the cell's. The file
    name alone proves nothing: a file can be copied over another."""
    expect = {"method": cell.method, "source_dataset": train.name, "source_fingerprint": train.fingerprint,
              "ipc": cell.set_ipc, "seed": cell.seed}
    for field, want in expect.items():
        if getattr(s, field) != want:
            return f"is not this cell's set ({field} {getattr(s, field)!r}, the cell's {want!r})"
    if canon(s.method_config) != canon(json.loads(canon(cfg))):
        return "is not this cell's set (another method config)"
    if (s.extra.get("code") or {}).get("condenser") != code["condenser"]:
        return "comes from other code"
    return None


def writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (tried, not guessed from permission bits)."""
    return unwritable(folder) is None


class FolderLock:
    """One writer per results folder: an exclusive lock on ``OUT/.sweep.lock`` (``filelock``: flock on
    POSIX, msvcrt on Windows), held for the whole sweep. The system releases it when the holder
    exits, however it exits, so a lock left by a killed sweep is never stale. A second sweep into the
    folder stops at once, naming the holder (``OUT/.sweep.lock.holder``)."""

    def __init__(self, folder: Path):
        self.path = folder / ".sweep.lock"
        self.holder = folder / ".sweep.lock.holder"
        self.lock = filelock.FileLock(self.path, timeout=0)

    def acquire(self) -> None:
        for path in (self.path, self.holder):   # never through a link, never a FIFO
            jsonl.check_regular(path)
        try:
            self.lock.acquire()
        except filelock.Timeout:
            try:
                holder = self.holder.read_text(errors="replace").strip()
            except OSError:
                holder = ""
            raise ValueError(f"{self.path.parent} is in use by another sweep ({holder or 'another process'}); wait "
                             "for it to finish or give --out another folder") from None
        since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        atomic_write(self.holder, data=f"pid {os.getpid()} on {socket.gethostname()} since {since}".encode())

    def release(self) -> None:
        if self.lock.is_locked:
            self.lock.release()


class Sweep(Planner):
    """One sweep into one results folder (its spec is ``self.args``)."""

    def __init__(self, args: SweepSpec):
        super().__init__(args)
        self.out: Path = args.out
        self.sets_dir = self.out / "sets"
        self.results = self.out / "results.jsonl"
        self.device = resolve_device(args.device)
        self.progress = not args.no_progress
        self.versions = versions()
        self.machine = machine(self.device)
        torch.set_num_threads(max(1, torch.get_num_threads()))
        jsonl.check_regular(self.results)
        self.writable = writable(self.out)
        self.lock = FolderLock(self.out)
        if self.writable:
            self.lock.acquire()
            removed = jsonl.repair(self.results)
            if removed:
                say(f"note: moved a partial last line ({removed} bytes) to {self.results.name}.partial")
        self.done: dict[str, str] = {}
        self.keys: set[str] = set()          # the record keys of every cell this sweep covers
        self._offset = 0
        self.refresh(first=True)

    def refresh(self, first: bool = False) -> None:
        """Read records appended since the last look (by this sweep or another writing the same
        folder), so a cell finished elsewhere is not run again."""
        if not self.results.exists():
            return
        with open(self.results, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        bad = 0
        for raw in chunk[:end].splitlines():
            rec = jsonl.decode(raw)
            if rec is None or not isinstance(rec.get("status"), str):
                bad += 1
                continue
            self.done[rec["key"]] = rec["status"] if self.done.get(rec["key"]) != "ok" else "ok"
            if first:
                self.existing.append({k: rec.get(k) for k in ("dataset", "arch", "protocol")})
        if bad and first:
            say(f"note: skipped {bad} unreadable line(s) in {self.results}")

    def cached_set(self, cell: Cell, train, condenser, code: dict):
        """(the cached set for ``cell`` or None, its path): sets are cached under ``OUT/sets`` by config
        and the condenser's code identity, so a changed condenser is condensed again, never reused."""
        cfg = dataclasses.asdict(condenser.config)
        h = stable_hash({"method": cell.method, "config": cfg, "ipc": cell.set_ipc, "seed": cell.seed,
                         "source": train.fingerprint, "code": code["condenser"]})
        path = self.sets_dir / f"{cell.dataset}-{cell.method}-ipc{cell.set_ipc}-s{cell.seed}-{h[:10]}.h5"
        if path.exists():
            try:
                s = condense.load(path)
            except condense.FormatError as e:
                self.set_aside(path, f"unusable ({e})")
                return None, path
            wrong = cached_mismatch(s, cell, train, cfg, code)
            if wrong is None:
                return s, path
            self.set_aside(path, wrong)
        return None, path

    def set_aside(self, path: Path, why: str) -> None:
        """Move a cached set that cannot serve its cell to ``sets/aside/`` (never deleted), in one line."""
        aside = self.sets_dir / "aside"
        aside.mkdir(exist_ok=True)
        target = aside / f"{path.stem}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}{path.suffix}"
        os.replace(path, target)
        say(f"note: cached set {path.name} {why}; moved to {target}, condensing again")

    def record_key(self, cell: Cell, train, condenser, arch: str, code: dict) -> str:
        key = {"dataset": cell.dataset, "source": train.fingerprint, "method": cell.method,
               "config": dataclasses.asdict(condenser.config), "ipc": cell.ipc, "set_ipc": cell.set_ipc,
               "seed": cell.seed, "train_seed": cell.train_seed, "arch": arch,
               "protocol": cell.protocol.to_dict(), "code": identity_key(code),
               "device": self.machine["device_kind"], "curve": self.curve_for(cell)}
        if self.args.stop_at_targets:
            key["stop_at_targets"] = True
        if self.args.compile:
            key["compile"] = True
        if self.together_for(cell) > 1:
            key["together"] = self.together_for(cell)
        return stable_hash(key)

    def curve_for(self, cell: Cell) -> str:
        """The cell's test-curve method: ``--curve`` for image protocols; graph protocols evaluate the
        whole test set at every checkpoint."""
        return self.args.curve if cell.protocol.kind == "images" else "full"

    def together_for(self, cell: Cell) -> int:
        """How many training seeds this cell's run is stacked with at most (1: alone)."""
        k = self.args.together
        return k if k > 1 and cell.protocol.kind == "images" and not self.args.stop_at_targets else 1

    def base_record(self, cell: Cell, train, condenser, arch, key, code) -> dict:
        return {"key": key, "dataset": cell.dataset, "method": cell.method, "ipc": cell.ipc, "set_ipc": cell.set_ipc,
                "seed": cell.seed, "train_seed": cell.train_seed, "arch": arch, "protocol": cell.protocol.to_dict(),
                "method_config": dataclasses.asdict(condenser.config), "source_split": train.split,
                "source_fingerprint": train.fingerprint, "source": train.source, "code": code,
                "deterministic": type(condenser).deterministic, "method_traits": type(condenser).traits(),
                "stop_at_targets": bool(self.args.stop_at_targets),
                **({"compile": True} if self.args.compile else {}),
                **({"together": self.together_for(cell)} if self.together_for(cell) > 1 else {}),
                "touches_full_data": condenser.touches_full_data, "versions": self.versions,
                "curve_method": self.curve_for(cell), "device_kind": self.machine["device_kind"],
                "machine": self.machine, "command": cell_command(self.args, cell.dataset, cell.method, cell.ipc,
                                                                 cell.seed, arch), "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def run_set(self, items: list[tuple[Cell, tuple, object]]) -> None:
        """Condense one set once (all ``items`` share it), then every training run of it not done yet."""
        job = self.set_job(items)
        if job is not None:
            self.commit(job, *work_set(job, self.context(), self.data[job.first.dataset],
                                       on_set=lambda s: save_set(s, job.path)))

    def set_job(self, items: list[tuple[Cell, tuple, object]]) -> "SetJob | None":
        """The driver's half before the work: the record keys of the set's runs, the runs not done yet,
        and the cached set if there is a usable one (None when every run is done)."""
        first, _, condenser = items[0]
        train = self.data[first.dataset][0]
        code = type(condenser).code_identity()
        todo = []
        self.refresh()
        for cell, archs, _ in items:
            keys = {a: self.record_key(cell, train, condenser, a, code) for a in archs}
            self.keys.update(keys.values())
            todo += [(cell, a, keys[a]) for a in self.pending(keys)]
        if not todo:
            return None
        if not self.writable:
            raise ValueError(f"results folder {self.out} is not writable and {len(todo)} run(s) of "
                             f"{first.dataset} {first.method} ipc={first.set_ipc} seed={first.seed} are not done; "
                             "give --out a writable folder")
        synset, path = self.cached_set(first, train, condenser, code)
        return SetJob(first=first, condenser=condenser, groups=self.groups(todo, first.protocol), path=path,
                      set_path=str(path.relative_to(self.out)), cached=synset,
                      base={key: self.base_record(cell, train, condenser, a, key, code) for cell, a, key in todo})

    def context(self) -> "WorkContext":
        return WorkContext(device=str(self.device), progress=self.progress,
                           stop_at_targets=self.args.stop_at_targets, compile=self.args.compile, curve=self.args.curve)

    def commit(self, job: "SetJob", synset, records: list[dict]) -> None:
        """The driver's half after the work: a newly condensed set goes into the set cache, then every
        record into ``results.jsonl`` (the only writer of both)."""
        if synset is not None:
            save_set(synset, job.path)
        for rec in records:
            self.write(rec)

    def groups(self, todo: list, protocol) -> list[list]:
        """Pending runs in evaluation calls: one run per call, or with ``--together K`` up to K training
        seeds of one set and architecture trained as one stacked network (image protocols)."""
        k = self.together_for(todo[0][0])
        if k <= 1:
            return [[t] for t in todo]
        by_arch: dict[str, list] = {}
        for t in todo:
            by_arch.setdefault(t[1], []).append(t)
        return [runs[i:i + k] for runs in by_arch.values() for i in range(0, len(runs), k)]

    def pending(self, keys: dict[str, str]) -> list[str]:
        return [a for a, k in keys.items() if self.done.get(k) != "ok" and
                (self.done.get(k) != "failed" or self.args.retry_failed)]

    def structure(self) -> None:
        """The structure-only reference rows (:mod:`condense.structure`) of every graph dataset of the
        sweep, fitted on its training split once per copy of the data, into ``structure.jsonl``."""
        path = self.out / "structure.jsonl"
        jsonl.check_regular(path)
        have = {r["key"] for r in jsonl.read(path)[0]}
        for name, (train, test, _) in self.data.items():
            if dataset_kind(name) != "graphs":
                continue
            for rec in structure_records(train, test, have):
                jsonl.append(path, clean(rec))
                say(f"{name} {rec['method']} (structure only, no model): acc {rec['acc']:.2f}"
                    + (f", ROC-AUC {rec['roc_auc']:.1f}" if rec["roc_auc"] is not None else ""))

    def write(self, rec: dict) -> None:
        jsonl.append(self.results, clean(rec))
        self.done[rec["key"]] = rec["status"]

    # -- everything

    def run(self) -> int:
        plan = self.plan()
        if not plan:  # a misspelt name must not pass for a finished sweep
            raise ValueError(nothing_to_run(self.skipped))
        if self.writable:
            self.structure()
        groups: dict[tuple, list] = {}
        for cell, archs in plan:  # runs of one set together: it is condensed once
            condenser = self.condenser(cell.method, cell.protocol, cell.dataset)
            key = (cell.dataset, cell.method, cell.set_ipc, cell.seed, stable_hash(dataclasses.asdict(condenser.config)))
            groups.setdefault(key, []).append((cell, archs, condenser))
        start = time.time()
        if self.args.executor == "ray":
            ray_executor.run(self, list(groups.values()), work_set)
        elif (jobs := pool.jobs_for(self, groups)) > 1:
            pool.run(self, list(groups.values()), work_set, jobs)
        else:
            for items in tqdm(list(groups.values()), desc="sets", disable=not self.progress, unit="set"):
                self.run_set(items)
        say(f"sweep finished in {time.time() - start:.1f} s; results in {self.results}")

        if not self.results.exists():
            return 0
        md = build([self.out], self.out if self.writable else None)
        if not self.writable:
            say(f"note: {self.out} is read-only: every cell was done, the leaderboard is printed, not written")
        print(md)
        if self.writable:
            say(f"leaderboard: {self.out / 'leaderboard.md'} (tables), {self.out / 'leaderboard.html'} (with plots)")
        return 0


def check_args(args: SweepSpec) -> None:
    """Every name and setting the spec's own types and rules cannot check, before any work: unknown
    methods, architectures or protocols, out-of-range protocol fields (``--epochs -1``), bad ``--set``
    overrides, a device that is not here, Ray options without Ray. Each stops the sweep with one line."""
    if args.imports and args.executor == "ray":
        raise ValueError("--import runs with the local executor (a release's condenser is registered in this "
                         "process only); import the sets first (python -m condense import) or drop --executor ray")
    for spec in args.imports:   # the releases' condensers exist before their --set overrides are checked
        register_release(spec)
    for m in args.methods or []:
        condenser_class(m)
    for a in args.archs or []:
        model_kind(a)
    check_arch_shapes(args)
    if args.executor == "ray":
        require_ray()
        if args.address:
            probe(args.address)
    elif args.address or args.ray_cpus:
        raise ValueError("--address and --ray-cpus go with --executor ray")
    if args.jobs > 1 and (args.executor == "ray" or args.imports):
        raise ValueError("--jobs goes with the local executor and no --import (Ray sizes its tasks by --cpus-per-cell)")
    resolve_device(args.device)
    planner = Planner(args)
    for kind in ("images", "graphs"):
        if args.protocol is None or get_protocol(args.protocol).kind == kind:
            planner.protocol(kind, "digits" if kind == "images" else "MUTAG")
    for method, fields in planner.overrides.items():
        condenser_class(method)
        create_condenser(method, args.preset, **fields)


def check_arch_shapes(args: SweepSpec) -> None:
    """Each image architecture asked for must take each image dataset's input shape (DC's evaluation
    family takes 28×28 and 32×32 only): built on the meta device, so it costs no memory or time."""
    if not args.archs:
        return
    for name in args.datasets or DEFAULT_DATASETS:
        spec = IMAGE_DATASETS.get(name)
        if spec is None:
            continue
        for a in args.archs:
            if model_kind(a) != "images":
                continue
            try:
                with torch.device("meta"):
                    create_model(a, spec.shape, spec.classes)
            except ValueError as e:
                raise ValueError(f"--archs {a} on {name} ({'×'.join(map(str, spec.shape))}): {one_line(e)}") from None


def execute(args: SweepSpec) -> "Sweep":
    """Run one checked sweep; the folder lock is released however it ends."""
    sweep = Sweep(args)
    try:
        sweep.run()
    finally:
        sweep.lock.release()
    return sweep


def main(argv=None) -> int:
    try:
        runs = sweep_specs(argv)
        for args in runs:
            check_args(args)
    except ValueError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        for args in runs:
            execute(args)
        return 0
    except KeyboardInterrupt:
        say("interrupted: finished cells are saved; run the same command to resume")
        return 130
    except (ValueError, OSError) as e:  # a user error found mid-sweep: finished cells are kept
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
