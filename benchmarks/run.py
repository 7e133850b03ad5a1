"""The benchmark sweep: condense each (dataset, method, ipc, seed) cell once, evaluate it on each
architecture, append every result to ``OUT/results.jsonl``, and print the leaderboard.

    python -m benchmarks.run --ipc 10                       # digits and MUTAG (both embedded)
    python -m benchmarks.run --datasets cifar10 --methods random --ipc 1 10 50 --seeds 0 1 2
    python -m benchmarks.run --config results/graph-mirage/sweep.toml     # a sweep file
    python -m benchmarks.run --executor ray --address HEAD:6379 ...        # on a Ray cluster

A killed sweep resumes: the same command skips every finished cell (ok or failed) and never
rewrites a line already written. Condensed sets are cached under ``OUT/sets`` by a config hash.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from condense.identity import identity_key

from . import jsonl
from .provenance import machine, versions

DEFAULT_DATASETS = ("digits", "MUTAG")


def build_parser() -> argparse.ArgumentParser:
    """The sweep's command line; its destinations are also the keys of a sweep file and the fields of
    :class:`benchmarks.api.SweepSpec`."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=None, metavar="SWEEP.toml",
                    help="a sweep file: every option below as a key, [set.METHOD] tables for condenser "
                         "fields, [[run]] tables for several sweeps; flags given here override it")
    ap.add_argument("--ipc", type=int, nargs="+", default=[10], help="images (graphs) per class; several allowed")
    ap.add_argument("--datasets", nargs="+", default=None,
                    help="default: digits and MUTAG (both ship with the package)")
    ap.add_argument("--methods", nargs="+", default=None, help="default: every condenser that applies")
    ap.add_argument("--archs", nargs="+", default=None, help="default: the dataset config's architectures")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--protocol", default=None, help="default: the dataset config's (dc for images, graph for graphs)")
    ap.add_argument("--preset", choices=("quick", "paper"), default="quick",
                    help="protocol and condenser preset (quick: DC 300 epochs without augmentation)")
    ap.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs (RS2: rounds)")
    ap.add_argument("--batch-size", type=int, default=None, help="override the protocol's batch size")
    ap.add_argument("--fraction", type=float, default=None,
                    help="RS2 selection-ratio mode: each round draws this fraction of the training split")
    ap.add_argument("--frequency-mode", choices=("proportional", "once"), default=None,
                    help="graph protocol: how Mirage pattern frequencies are used (default: proportional)")
    ap.add_argument("--checkpoints", type=int, default=None,
                    help="test-accuracy checkpoints per run (protocol default 50: every 2%% of steps)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--curve", choices=("screened", "full"), default="screened",
                    help="test curve: screened (default; each target's time-to-accuracy the exhaustive curve's "
                         "with probability >= 99.9 %%) or full (every checkpoint on the whole test set); "
                         "each its own table")
    ap.add_argument("--out", type=Path, default=Path("runs/default"))
    ap.add_argument("--data-root", default=None, help="data root (default $CONDENSE_DATA)")
    ap.add_argument("--retry-failed", action="store_true", help="run cells recorded as failed again")
    ap.add_argument("--stop-at-targets", action="store_true",
                    help="end each training run once it reaches the highest TTA target (reference runs "
                         "for time-to-accuracy; their accuracy is then marked as not final)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--compile", action="store_true",
                    help="train image students through torch.compile (pays on long CPU and GPU runs; compile "
                         "time counts as training time; such rows form their own tables)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                    help="override a condenser config field, e.g. --set herding.train_epochs=5")
    ap.add_argument("--train-seeds", type=int, default=1, metavar="K",
                    help="training seeds per set (a run is a set seed and a training seed; default 1)")
    ap.add_argument("--together", type=int, default=1, metavar="K",
                    help="train up to K training seeds of one set as one stacked ConvNet (image protocols; the "
                         "same runs, each seed's seconds the stack's / K; such rows form their own tables)")
    ap.add_argument("--executor", choices=("local", "ray"), default="local",
                    help="local (default): one set after another in this process; ray: each set a Ray task "
                         "(pip install -e '.[ray]'), this driver the only writer")
    ap.add_argument("--address", default=None, metavar="HOST:PORT",
                    help="ray: join the cluster started with `ray start --head` (default: a local instance)")
    ap.add_argument("--ray-cpus", type=int, default=None, metavar="N",
                    help="ray without --address: CPUs of the local instance (default: all)")
    ap.add_argument("--cpus-per-cell", type=float, default=1.0, metavar="N", help="ray: CPUs per task (torch threads)")
    ap.add_argument("--gpus-per-cell", type=float, default=0.0, metavar="N", help="ray: GPUs per task")
    ap.add_argument("--budget", choices=("steps", "epochs"), default=None,
                    help="steps (default): every row trains the steps of the plain IPC×C set; epochs: every set "
                         "trains the protocol's epochs over its own items (a paper's own protocol, labelled)")
    ap.add_argument("--scores", action="store_true",
                    help="also run the cells the DD-Ranking scores (HLR, IOR, LRS, ARS) of each method still lack")
    return ap


def parse_args(argv=None) -> argparse.Namespace:
    """The options of one sweep (the command line alone; :func:`sweep_args` adds a sweep file)."""
    return build_parser().parse_args(argv)


# ----------------------------------------------------------------------------- sweep files

FILE_ONLY = {"config", "help"}          # destinations a sweep file cannot set
KEY_ALIASES = {"set": "overrides"}      # a sweep file's [set.METHOD] tables are --set METHOD.FIELD=VALUE


def _actions() -> dict[str, argparse.Action]:
    return {a.dest: a for a in build_parser()._actions if a.dest not in FILE_ONLY}


def _coerce(action: argparse.Action, key: str, value, where: str):
    """A sweep-file (or API) value as the command line would have parsed it, checked the same way."""
    def bad(want):
        return ValueError(f"{where}: {key} must be {want}, got {value!r}")

    if action.dest == "overrides":
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise bad("a table of method tables ([set.METHOD] FIELD = VALUE)")
        return [f"{m}.{f}={json.dumps(v)}" for m, fields in value.items() for f, v in fields.items()]
    if value is None and action.default is None:
        return None
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    many = action.nargs in ("+", "*")
    items = list(value) if many and isinstance(value, (list, tuple)) else [value] if many else None
    if many and not items:
        raise bad("a non-empty list")
    conv = action.type or str

    def one(v):
        if isinstance(v, (list, tuple, dict)) or isinstance(v, bool) and conv is not bool:
            raise bad("a number" if conv in (int, float) else "a string" if conv is str else "a path")
        if conv is int and not (isinstance(v, int) or isinstance(v, float) and v.is_integer()):
            raise bad("an integer" + (" or a list of them" if many else ""))
        if conv is float and not isinstance(v, (int, float)):
            raise bad("a number")
        if conv in (str, Path) and not isinstance(v, (str, Path)):
            raise bad("a string")
        out = conv(v)
        if action.choices is not None and out not in action.choices:
            raise ValueError(f"{where}: {key} must be one of {', '.join(map(str, action.choices))}, got {v!r}")
        return out

    return [one(v) for v in items] if many else None if value is None else one(value)


def namespace(values: dict, where: str, base: argparse.Namespace | None = None) -> argparse.Namespace:
    """The command line's defaults (or ``base``) with ``values`` applied; an unknown key is one error
    naming it and ``where``."""
    actions = _actions()
    args = base if base is not None else build_parser().parse_args([])
    for key, value in values.items():
        dest = KEY_ALIASES.get(key, key.replace("-", "_"))
        if dest not in actions:
            known = sorted((set(actions) - {"overrides"}) | {"set"})
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        setattr(args, dest, _coerce(actions[dest], key, value, where))
    return args


def read_sweep_file(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise ValueError(f"{path}: sweep files need Python 3.11 or later (tomllib)") from None

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such sweep file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a TOML sweep file ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read the sweep file ({e.strerror or e})") from None


def sweep_args(argv=None) -> list[argparse.Namespace]:
    """The sweeps a command line asks for: one, or with ``--config`` one per ``[[run]]`` table of the
    file (top-level keys are shared; a run's keys replace them, its ``[set.METHOD]`` fields are added).
    Flags given on the command line override the file in every run."""
    ap = build_parser()
    cli = ap.parse_args(argv)
    if cli.config is None:
        return [cli]
    quiet = build_parser()
    for a in quiet._actions:
        a.default = argparse.SUPPRESS
    given = vars(quiet.parse_args(argv))
    doc = read_sweep_file(cli.config)
    runs = doc.pop("run", [{}])
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise ValueError(f"{cli.config}: 'run' must be one or more [[run]] tables")
    out = []
    for i, run in enumerate(runs):
        where = f"{cli.config}" + (f" [[run]] {i + 1}" if len(runs) > 1 else "")
        if "run" in run:
            raise ValueError(f"{where}: unknown key 'run' (runs do not nest)")
        shared_set = doc.get("set", {})
        merged = {**doc, **run}
        if "set" in run and isinstance(shared_set, dict) and isinstance(run["set"], dict):
            merged["set"] = {m: {**shared_set.get(m, {}), **run["set"].get(m, {})}
                             for m in {**shared_set, **run["set"]}}
        args = namespace(merged, where)
        for dest, value in given.items():
            if dest == "overrides":
                args.overrides = list(args.overrides) + list(value)
            elif dest != "config":
                setattr(args, dest, value)
        args.config = cli.config
        out.append(args)
    return out


# ----------------------------------------------------------------------------- helpers


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def clean(obj):
    """JSON-safe: NaN/Inf become None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def parse_overrides(items) -> dict[str, dict]:
    from condense.checks import parse_value

    out: dict[str, dict] = {}
    for item in items:
        try:
            lhs, value = item.split("=", 1)
            method, field = lhs.split(".", 1)
        except ValueError:
            raise ValueError(f"--set expects METHOD.FIELD=VALUE, got {item!r}") from None
        out.setdefault(method, {})[field] = parse_value(value)
    return out


def writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (tried, not guessed from permission bits)."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-").close()
        return True
    except OSError:
        return False


class FolderLock:
    """One writer per results folder: an exclusive ``flock`` on ``OUT/.sweep.lock``, held for the
    whole sweep. The kernel releases it when the holder exits, however it exits, so a lock left by a
    killed sweep is never stale. A second sweep into the folder stops at once, naming the holder."""

    def __init__(self, folder: Path):
        self.path, self.fd = folder / ".sweep.lock", None

    def acquire(self) -> None:
        import fcntl
        import socket

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ValueError(f"{self.path.parent} is in use by another sweep ({holder}); wait for it to finish "
                             "or give --out another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- seeds, cells, clocks

TRAIN_SEED_BASE = 1 << 62


def train_seed(set_seed: int, k: int) -> int:
    """The ``k``-th training seed of a set: drawn from its own stream, in ``[2^62, 2^63)`` while set
    seeds stay below ``2^62``, so a training seed never coincides with a set seed."""
    digest = hashlib.sha256(f"condense-train-seed:{set_seed}:{k}".encode()).digest()
    return TRAIN_SEED_BASE | (int.from_bytes(digest[:8], "big") & (TRAIN_SEED_BASE - 1))


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run: a set (dataset, method, set IPC, set seed) trained with one training seed
    under one protocol, at the step budget of ``ipc`` (for ``full`` under the steps budget: the
    table's IPC, while the set itself is the whole split)."""

    dataset: str
    method: str
    ipc: int
    seed: int
    train_seed: int
    protocol: object
    set_ipc: int

    @property
    def label(self) -> str:
        return (f"{self.dataset} {self.method} ipc={self.ipc} set seed={self.seed} "
                f"train seed={self.train_seed} {self.protocol.name}")


def clock_problems(rec: dict) -> list[str]:
    """The clock invariants every record must hold (DESIGN §4): every time is finite and >= 0 or
    absent (None: not measured, shown as "—"), and condense time includes teacher time on both
    clocks. Nothing mixes clocks: each has its own fields."""
    out = []
    names = ("condense_seconds", "condense_cpu_seconds", "teacher_seconds", "teacher_cpu_seconds", "train_seconds",
             "cpu_seconds", "eval_seconds", "eval_cpu_seconds")
    for k in names:
        v = rec.get(k)
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            out.append(f"{k} is {v!r}")
    for cond, teach in (("condense_seconds", "teacher_seconds"), ("condense_cpu_seconds", "teacher_cpu_seconds")):
        c, t = rec.get(cond), rec.get(teach)
        if c is not None and t is not None and t > c * (1 + 1e-9) + 1e-9:
            out.append(f"{teach} ({t:g}) exceed {cond} ({c:g})")
    return out


def source_bytes(train) -> int:
    """Bytes a method that reads the whole training split reads (RS2, ``full``): its arrays as stored."""
    if getattr(train, "kind", "images") == "images":
        return int(train.images.numel() * train.images.element_size() + train.labels.numel() * 8)
    from condense.store import pack_graphs

    packed = pack_graphs([train[i] for i in range(len(train))])
    return int(sum(v.numel() * v.element_size() for v in packed.values()))


# ----------------------------------------------------------------------------- the sweep


@dataclasses.dataclass
class SetJob:
    """One set's work, as the driver hands it to an executor: the pending runs in evaluation groups,
    their base records, and the cached set (None: condense it)."""

    first: Cell
    condenser: object
    groups: list
    path: Path
    set_path: str
    cached: object
    base: dict

    def failed(self, stage: str, error: BaseException, trace: str) -> list[dict]:
        """Every pending run of the set recorded as failed at ``stage``."""
        return [{**self.base[key], "status": "failed", "stage": stage, "error": f"{type(error).__name__}: {error}",
                 "traceback": trace} for group in self.groups for _, _, key in group]


@dataclasses.dataclass(frozen=True)
class WorkContext:
    device: str
    progress: bool
    stop_at_targets: bool
    compile: bool
    curve: str = "screened"


def work_set(job: SetJob, ctx: WorkContext, data, on_set=None) -> tuple[object, list[dict]]:
    """The worker's half, in this process or on a cluster: condense the set unless it is cached, train
    every pending run, and return (the new set or None, the finished records). It writes nothing itself:
    ``on_set(set)`` (the local executor's cache write) is called as soon as a set is condensed, and then
    no set is returned; a failure becomes failed records, as with every executor."""
    from condense.evaluate import evaluate, resolve_device

    train, test, val = data
    device = resolve_device(ctx.device)
    where = machine(device)  # this process's: on a cluster the worker that measures the seconds
    synset, new = job.cached, None
    if synset is None:
        try:
            synset = new = job.condenser.condense(train, job.first.set_ipc, seed=job.first.seed, device=device,
                                                  progress=ctx.progress)
            if on_set is not None:
                on_set(new)
        except Exception as e:  # noqa: BLE001 - a failed cell is recorded and the sweep goes on
            say(f"FAILED condense {job.first.label}: {type(e).__name__}: {e}")
            return None, job.failed("condense", e, traceback.format_exc(limit=8))
    x = synset.extra
    set_fields = {"set_path": job.set_path, "set_cached": new is None, "storage_bytes": synset.storage_bytes,
                  "reads_bytes": source_bytes(train) if job.condenser.touches_full_data else synset.storage_bytes["total"],
                  "condense_seconds": synset.condense_seconds, "condense_cpu_seconds": x.get("condense_cpu_seconds"),
                  "teacher_seconds": synset.teacher_seconds,
                  "teacher_cpu_seconds": x.get("teacher_cpu_seconds", None if synset.teacher_seconds else 0.0),
                  "deviations": list(synset.deviations),
                  "set_extra": {k: v for k, v in x.items() if k != "source_indices"}}
    records = []
    for group in job.groups:
        recs = [{**job.base[key], **set_fields, "machine": where, "device_kind": where["device_kind"]}
                for _, _, key in group]
        cell, a = group[0][0], group[0][1]
        try:
            res = evaluate(synset, test, arch=a, protocol=cell.protocol, seeds=[c.train_seed for c, _, _ in group],
                           device=device, val=val, source=train, progress=ctx.progress,
                           stop_at_targets=ctx.stop_at_targets, budget_ipc=cell.ipc, compile=ctx.compile,
                           together=len(group), curve=ctx.curve)
        except Exception as e:  # noqa: BLE001
            for (cell, a, _), rec in zip(group, recs):
                rec.update(status="failed", stage="evaluate", error=f"{type(e).__name__}: {e}",
                           traceback=traceback.format_exc(limit=8))
                say(f"FAILED evaluate {cell.label} {a}: {type(e).__name__}: {e}")
            records += recs
            continue
        tta = res.tta_summary()
        records += [complete(rec, res, tta, i, f"{c.label} {arch}") for i, ((c, arch, _), rec) in enumerate(zip(group, recs))]
    return (None if on_set is not None else new), records


def complete(rec: dict, res, tta: dict, i: int, label: str) -> dict:
    """A record filled from run ``i`` of an evaluation (failed if its clocks disagree)."""
    run = res.runs[i]
    plan = run.extra.get("plan", {})
    rec.update(status="ok", acc=run.final_acc, curve=run.curve, train_seconds=run.train_seconds,
               cpu_seconds=run.cpu_seconds, eval_seconds=run.eval_seconds,
               eval_cpu_seconds=run.eval_cpu_seconds, steps=run.steps,
               planned_steps=plan.get("steps"), samples=plan.get("samples"), plan=plan,
               run_extra={k: v for k, v in run.extra.items() if k != "plan"},
               targets=list(res.targets), protocol=res.protocol,
               **{f"tta{suffix}": {t: v[field][i] for t, v in tta.items()}
                  for suffix, field in (("", "per_seed"), ("_no_teacher", "no_teacher"), ("_cpu", "cpu"),
                                        ("_cpu_no_teacher", "cpu_no_teacher"))})
    problems = clock_problems(rec)
    if problems:
        rec.update(status="failed", stage="clocks", error="clock invariant broken: " + "; ".join(problems))
        say(f"FAILED clocks {label}: {'; '.join(problems)}")
    return rec


class Sweep:
    def __init__(self, args: argparse.Namespace):
        import torch

        from condense.evaluate import resolve_device

        self.args = args
        self.out: Path = args.out
        self.sets_dir = self.out / "sets"
        self.results = self.out / "results.jsonl"
        self.device = resolve_device(args.device)
        self.progress = not args.no_progress
        self.overrides = parse_overrides(args.overrides)
        if args.fraction is not None:
            self.overrides.setdefault("rs2", {})["fraction"] = args.fraction
        self.versions = versions()
        self.machine = machine(self.device)
        torch.set_num_threads(max(1, torch.get_num_threads()))
        self.writable = writable(self.out)
        self.lock = FolderLock(self.out)
        if self.writable:
            self.lock.acquire()
            removed = jsonl.repair(self.results)
            if removed:
                say(f"note: trimmed a partial last line ({removed} bytes) left by an interrupted run")
        self.done: dict[str, str] = {}
        self.keys: set[str] = set()          # the record keys of every cell this sweep covers
        self.existing: list[dict] = []
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
            rec = jsonl._decode(raw)
            if rec is None or not isinstance(rec.get("status"), str):
                bad += 1
                continue
            self.done[rec["key"]] = rec["status"] if self.done.get(rec["key"]) != "ok" else "ok"
            if first:
                self.existing.append({k: rec.get(k) for k in ("dataset", "arch", "protocol")})
        if bad and first:
            say(f"note: skipped {bad} unreadable line(s) in {self.results}")

    # -- what to run

    def datasets(self) -> list[str]:
        from condense.data import availability

        names = self.args.datasets or list(DEFAULT_DATASETS)
        keep = []
        for name in names:
            try:
                av = availability(name, self.args.data_root)
            except Exception as e:  # noqa: BLE001 - report any lookup failure as a skip
                say(f"skip {name}: {e}")
                continue
            if av["available"]:
                keep.append(name)
            elif self.args.datasets is None and name != "digits":
                say(f"skip {name}: not available (set CONDENSE_DATA to a folder holding it)")
            else:
                keep.append(name)  # asked for explicitly: loading reports exactly what is missing
        return keep

    def methods_for(self, kind: str, protocol) -> list[str]:
        from condense.methods import condenser_class, default_condensers

        if self.args.methods is None:
            return default_condensers(kind, protocol)
        keep = []
        for m in self.args.methods:
            cls = condenser_class(m)  # unknown method: a clear error, before any work
            if kind in cls.kinds:
                keep.append(m)
            else:
                say(f"skip method {m} on {kind} datasets: it handles {', '.join(cls.kinds)}")
        return keep

    def protocol(self, kind: str, dataset: str, name: str | None = None, **extra):
        from condense.configs import dataset_config
        from condense.protocols import get_protocol

        cfg = dataset_config(dataset, kind)
        name = name or self.args.protocol or cfg.protocol
        over = dict(cfg.quick_protocol) if self.args.preset == "quick" else {}
        if self.args.epochs is not None:
            over["epochs"] = self.args.epochs
        if self.args.checkpoints is not None:
            over["checkpoints"] = self.args.checkpoints
        if self.args.batch_size is not None:
            over["batch_size"] = self.args.batch_size
        if self.args.frequency_mode is not None and kind == "graphs":
            over["frequency_mode"] = self.args.frequency_mode
        if getattr(self.args, "budget", None):
            over["budget"] = self.args.budget
        return get_protocol(name, self.args.preset, **{**over, **extra})

    def cells(self, name: str, kind: str, protocol, methods: list[str], ipcs: list[int]) -> list[Cell]:
        """Every training run of these methods: set seeds × training seeds; a deterministic condenser
        is condensed once (the first set seed) and trained as many times as the others."""
        from condense.methods import condenser_class

        out = []
        k = self.args.train_seeds
        for method in methods:
            cls = condenser_class(method)
            if cls.uses_ipc:
                budgets = [(i, i) for i in ipcs]
            elif protocol.budget == "steps":
                budgets = [(i, 0) for i in ipcs]      # the whole split at each table's step budget
            else:
                budgets = [(0, 0)]
            for ipc, set_ipc in budgets:
                for s in self.args.seeds:
                    set_seed = self.args.seeds[0] if cls.deterministic else s
                    for j in range(k):
                        out.append(Cell(name, method, ipc, set_seed, train_seed(s, j), protocol, set_ipc))
        return out

    def score_protocols(self, kind: str, name: str, base) -> dict[str, object]:
        """The protocols the DD-Ranking scores read (``--scores``): the hard-label one (dc), the
        soft-label one (kd), and each with the augmentation switched (ARS)."""
        hard = base if base.loss == "ce" and base.name == "dc" else self.protocol(kind, name, "dc")
        soft = base if base.loss == "kd" else self.protocol(kind, name, "kd")
        return {"hard": hard, "soft": soft, "hard-aug": aug_variant(hard), "soft-aug": aug_variant(soft)}

    def plan(self) -> list[tuple[Cell, list[str]]]:
        from condense.configs import dataset_config
        from condense.data import DatasetNotFoundError, dataset_kind, load_dataset
        from condense.models import model_kind

        plan = []
        self.data = {}
        for name in self.datasets():
            kind = dataset_kind(name)
            try:
                train = load_dataset(name, "train", root=self.args.data_root)
                test = load_dataset(name, "test", root=self.args.data_root)
                val = load_dataset(name, "val", root=self.args.data_root) if kind == "graphs" else None
            except DatasetNotFoundError as e:
                say(f"skip {name}: {e}")
                continue
            self.data[name] = (train, test, val)
            archs = self.args.archs or list(dataset_config(name, kind).archs)
            bad = [a for a in archs if model_kind(a) != kind]
            if bad:
                say(f"skip archs {', '.join(bad)} on {name}: they are not {kind} models")
                archs = [a for a in archs if a not in bad]
            protocol = self.protocol(kind, name)
            if protocol.kind != kind:
                if self.args.datasets is not None:
                    raise ValueError(f"protocol {protocol.name!r} trains on {protocol.kind}, and {name} holds {kind}")
                say(f"skip {name}: protocol {protocol.name!r} does not apply to {kind}")
                continue
            methods = self.methods_for(kind, protocol)
            cells = self.cells(name, kind, protocol, methods, self.args.ipc)
            if self.args.scores and kind == "images":
                cells += self.score_cells(name, kind, protocol, methods)
            for c in dict.fromkeys(cells):
                self.check_budget_mix(name, archs, c.protocol)
                plan.append((c, archs))
        return list(dict.fromkeys((c, tuple(a)) for c, a in plan))

    def score_cells(self, name: str, kind: str, base, methods: list[str]) -> list[Cell]:
        """Cells the DD-Ranking scores of ``methods`` still need: the method under hard labels and
        the whole split at the same budget (HLR), the method and its random baseline under its own
        label pipeline (IOR), and both with the augmentation switched (ARS)."""
        from condense.methods import condenser_class

        ps = self.score_protocols(kind, name, base)
        out = []
        for m in methods:
            if m in BASELINES:
                continue
            soft = condenser_class(m).soft_labels
            own, flip = (ps["soft"], ps["soft-aug"]) if soft else (ps["hard"], ps["hard-aug"])
            baseline = "random-kd" if soft else "random"
            out += self.cells(name, kind, ps["hard"], [m, "full"], self.args.ipc)
            for p in (own, flip):
                if p is not None:  # fkd has no augmentation-off twin (ARS is then "—")
                    out += self.cells(name, kind, p, [m, baseline], self.args.ipc)
        return out

    def check_budget_mix(self, dataset: str, archs, protocol) -> None:
        """One table, one budget: refuse to add records whose protocol differs from records already in
        the folder only by the budget rule (they would read as one table with two budgets)."""
        mine = protocol.to_dict()
        for rec in self.existing:
            p = rec.get("protocol") or {}
            if rec.get("dataset") != dataset or rec.get("arch") not in archs or not isinstance(p, dict):
                continue
            theirs = {**p, "budget": p.get("budget", "epochs")}
            theirs.pop("arch_kwargs", None)
            ours = {k: v for k, v in mine.items() if k != "arch_kwargs"}
            if theirs["budget"] != ours["budget"] and {k: v for k, v in theirs.items() if k != "budget"} == \
                    {k: v for k, v in ours.items() if k != "budget"}:
                raise ValueError(f"{self.results} holds {dataset} {protocol.name} records under budget="
                                 f"{theirs['budget']}, and this sweep asks budget={ours['budget']} for the same "
                                 "protocol: one table cannot mix budgets; use another --out")

    # -- one set, its runs

    def condenser(self, method: str, protocol, dataset: str):
        from condense.configs import dataset_config
        from condense.methods import create_condenser

        over = dict(self.overrides.get(method, {}))
        if self.args.preset == "quick":
            over = {**dataset_config(dataset, protocol.kind).condenser_overrides(method), **over}
        try:
            return create_condenser(method, self.args.preset, **over).for_protocol(protocol)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None

    def cached_set(self, cell: Cell, train, condenser, code: dict):
        """(the cached set for ``cell`` or None, its path): sets are cached under ``OUT/sets`` by config
        and the condenser's code identity, so a changed condenser is condensed again, never reused."""
        import condense

        cfg = dataclasses.asdict(condenser.config)
        h = stable_hash({"method": cell.method, "config": cfg, "ipc": cell.set_ipc, "seed": cell.seed,
                         "source": train.fingerprint, "code": code["condenser"]})
        path = self.sets_dir / f"{cell.dataset}-{cell.method}-ipc{cell.set_ipc}-s{cell.seed}-{h[:10]}.h5"
        if path.exists():
            try:
                s = condense.load(path)
                if (s.extra.get("code") or {}).get("condenser") == code["condenser"]:
                    return s, path
                say(f"note: cached set {path} comes from other code; condensing again")
            except condense.FormatError as e:
                say(f"note: cached set unusable, condensing again ({e})")
        return None, path

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
                "deterministic": type(condenser).deterministic, "stop_at_targets": bool(self.args.stop_at_targets),
                **({"compile": True} if self.args.compile else {}),
                **({"together": self.together_for(cell)} if self.together_for(cell) > 1 else {}),
                "touches_full_data": condenser.touches_full_data, "versions": self.versions,
                "curve_method": self.curve_for(cell), "device_kind": self.machine["device_kind"],
                "machine": self.machine, "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def run_set(self, items: list[tuple[Cell, tuple, object]]) -> None:
        """Condense one set once (all ``items`` share it), then every training run of it not done yet."""
        import condense

        job = self.set_job(items)
        if job is not None:
            self.commit(job, *work_set(job, self.context(), self.data[job.first.dataset],
                                       on_set=lambda s: condense.save(s, job.path)))

    def set_job(self, items: list[tuple[Cell, tuple, object]]) -> "SetJob | None":
        """The driver's half before the work: the record keys of the set's runs, the runs not done yet,
        and the cached set if there is a usable one (None when every run is done)."""
        from condense.identity import code_identity
        from condense.methods import condenser_module

        first, _, condenser = items[0]
        train = self.data[first.dataset][0]
        code = code_identity(condenser_module(first.method))
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
        import condense

        if synset is not None:
            condense.save(synset, job.path)
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

    def write(self, rec: dict) -> None:
        jsonl.append(self.results, clean(rec))
        self.done[rec["key"]] = rec["status"]

    # -- everything

    def run(self) -> int:
        from tqdm.auto import tqdm

        plan = self.plan()
        if not plan:
            say("nothing to run")
        groups: dict[tuple, list] = {}
        for cell, archs in plan:  # runs of one set together: it is condensed once
            condenser = self.condenser(cell.method, cell.protocol, cell.dataset)
            key = (cell.dataset, cell.method, cell.set_ipc, cell.seed, stable_hash(dataclasses.asdict(condenser.config)))
            groups.setdefault(key, []).append((cell, archs, condenser))
        start = time.time()
        if self.args.executor == "ray":
            from . import ray_executor

            ray_executor.run(self, list(groups.values()), work_set)
        else:
            for items in tqdm(list(groups.values()), desc="sets", disable=not self.progress, unit="set"):
                self.run_set(items)
        say(f"sweep finished in {time.time() - start:.1f} s; results in {self.results}")
        from .leaderboard import build

        if not self.results.exists():
            return 0
        md = build([self.out], self.out if self.writable else None)
        if not self.writable:
            say(f"note: {self.out} is read-only: every cell was done, the leaderboard is printed, not written")
        print(md)
        if self.writable:
            say(f"leaderboard: {self.out / 'leaderboard.md'} (tables), {self.out / 'leaderboard.html'} (with plots)")
        return 0


BASELINES = ("random", "random-kd", "full")


def aug_variant(p):
    """The protocol with its augmentation switched (ARS): on when off (DSA for ``dc``, crop + flip
    otherwise), and off when on (mixup too, for ``kd``). ``fkd`` has none: its replay labels belong to
    the stored augmented views, so it cannot train without them (None)."""
    if p.augment == "fkd":
        return None
    if p.augment is None:
        return p.replace(augment="dsa" if p.name == "dc" else "rs2" if p.name == "rs2" else "crop-flip")
    return p.replace(augment=None, mixup_alpha=0.0)


def check_args(args) -> None:
    """Every name and setting is checked before any work: unknown methods, architectures or
    protocols, out-of-range protocol fields (``--epochs -1``), bad ``--set`` overrides, an IPC or
    seed out of range, a device that is not here. Each stops the sweep with one line."""
    from condense.evaluate import resolve_device
    from condense.methods import condenser_class, create_condenser
    from condense.models import model_kind

    for m in args.methods or []:
        condenser_class(m)
    for a in args.archs or []:
        model_kind(a)
    if any(i < 1 for i in args.ipc):
        raise ValueError(f"--ipc takes positive integers, got {args.ipc}")
    if any(not 0 <= s < TRAIN_SEED_BASE for s in args.seeds):
        raise ValueError(f"--seeds takes set seeds in [0, 2^62), got {args.seeds}")
    if not 1 <= args.train_seeds <= 1000:
        raise ValueError(f"--train-seeds takes an integer in [1, 1000], got {args.train_seeds}")
    if not 1 <= args.together <= 1000:
        raise ValueError(f"--together takes an integer in [1, 1000], got {args.together}")
    if not (0 < args.cpus_per_cell <= 4096 and 0 <= args.gpus_per_cell <= 64):
        raise ValueError(f"--cpus-per-cell takes a number in (0, 4096] and --gpus-per-cell one in [0, 64], got "
                         f"{args.cpus_per_cell} and {args.gpus_per_cell}")
    if args.ray_cpus is not None and not 1 <= args.ray_cpus <= 100_000:
        raise ValueError(f"--ray-cpus takes a positive integer, got {args.ray_cpus}")
    if args.executor == "ray":
        from .ray_executor import probe, require_ray

        require_ray()
        if args.address:
            probe(args.address)
    elif args.address or args.ray_cpus:
        raise ValueError("--address and --ray-cpus go with --executor ray")
    resolve_device(args.device)
    sweep = Sweep.__new__(Sweep)
    sweep.args = args
    for kind in ("images", "graphs"):
        if args.protocol is None or _protocol_kind(args.protocol) == kind:
            sweep.protocol(kind, "digits" if kind == "images" else "MUTAG")
    overrides = parse_overrides(args.overrides)
    if args.fraction is not None:
        overrides.setdefault("rs2", {})["fraction"] = args.fraction
    for method, fields in overrides.items():
        condenser_class(method)
        create_condenser(method, args.preset, **fields)


def _protocol_kind(name: str) -> str:
    from condense.protocols import get_protocol

    return get_protocol(name).kind


def execute(args: argparse.Namespace) -> "Sweep":
    """Run one checked sweep; the folder lock is released however it ends."""
    sweep = Sweep(args)
    try:
        sweep.run()
    finally:
        sweep.lock.release()
    return sweep


def main(argv=None) -> int:
    try:
        runs = sweep_args(argv)
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
        from condense.__main__ import one_line

        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
