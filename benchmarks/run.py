"""The benchmark sweep: condense each (dataset, method, ipc, seed) cell once, evaluate it on each
architecture, append every result to ``OUT/results.jsonl``, and print the leaderboard.

    python -m benchmarks.run --ipc 10                       # digits (+ MUTAG when available)
    python -m benchmarks.run --datasets cifar10 --methods random --ipc 1 10 50 --seeds 0 1 2

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
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from . import jsonl

DEFAULT_DATASETS = ("digits", "MUTAG")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipc", type=int, nargs="+", default=[10], help="images (graphs) per class; several allowed")
    ap.add_argument("--datasets", nargs="+", default=None,
                    help="default: digits, plus MUTAG when its files are available")
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
    ap.add_argument("--out", type=Path, default=Path("runs/default"))
    ap.add_argument("--data-root", default=None, help="data root (default $CONDENSE_DATA)")
    ap.add_argument("--retry-failed", action="store_true", help="run cells recorded as failed again")
    ap.add_argument("--stop-at-targets", action="store_true",
                    help="end each training run once it reaches the highest TTA target (reference runs "
                         "for time-to-accuracy; their accuracy is then marked as not final)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                    help="override a condenser config field, e.g. --set herding.train_epochs=5")
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------- helpers


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def versions() -> dict:
    import h5py
    import numpy
    import torch

    import condense

    out = {"condense": condense.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
           "h5py": h5py.__version__, "python": platform.python_version()}
    for mod in ("torchvision", "kornia", "torch_geometric"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - optional at record time
            pass
    return out


def machine(device) -> dict:
    import torch

    info = {"device": str(device), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(terse=True)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


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


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the sweep


@dataclasses.dataclass
class Cell:
    dataset: str
    method: str
    ipc: int
    seed: int


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
        if self.writable:
            removed = jsonl.repair(self.results)
            if removed:
                say(f"note: trimmed a partial last line ({removed} bytes) left by an interrupted run")
        self.done: dict[str, str] = {}
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
            self.done[rec["key"]] = rec["status"]
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

    # -- one cell

    def condenser(self, method: str):
        from condense.methods import create_condenser

        return create_condenser(method, self.args.preset, **self.overrides.get(method, {}))

    def condensed_set(self, cell: Cell, train, condenser):
        import condense

        cfg = dataclasses.asdict(condenser.config)
        h = stable_hash({"method": cell.method, "config": cfg, "ipc": cell.ipc, "seed": cell.seed,
                         "source": train.fingerprint, "version": self.versions["condense"]})
        path = self.sets_dir / f"{cell.dataset}-{cell.method}-ipc{cell.ipc}-s{cell.seed}-{h[:10]}.h5"
        if path.exists():
            try:
                return condense.load(path), path, True
            except condense.FormatError as e:
                say(f"note: cached set unusable, condensing again ({e})")
        synset = condenser.condense(train, cell.ipc, seed=cell.seed, device=self.device, progress=self.progress)
        condense.save(synset, path)
        return synset, path, False

    def protocol(self, kind: str, dataset: str):
        from condense.configs import dataset_config
        from condense.protocols import get_protocol

        name = self.args.protocol or dataset_config(dataset, kind).protocol
        over = {}
        if self.args.epochs is not None:
            over["epochs"] = self.args.epochs
        if self.args.checkpoints is not None:
            over["checkpoints"] = self.args.checkpoints
        if self.args.batch_size is not None:
            over["batch_size"] = self.args.batch_size
        if self.args.frequency_mode is not None and kind == "graphs":
            over["frequency_mode"] = self.args.frequency_mode
        return get_protocol(name, self.args.preset, **over)

    def record_key(self, cell: Cell, train, condenser, arch: str, protocol) -> str:
        key = {"dataset": cell.dataset, "source": train.fingerprint, "method": cell.method,
               "config": dataclasses.asdict(condenser.config), "ipc": cell.ipc,
               "seed": cell.seed, "arch": arch, "protocol": protocol.to_dict()}
        if self.args.stop_at_targets:
            key["stop_at_targets"] = True
        return stable_hash(key)

    def base_record(self, cell: Cell, train, condenser, arch, protocol, key) -> dict:
        return {"key": key, "dataset": cell.dataset, "method": cell.method, "ipc": cell.ipc,
                "seed": cell.seed, "arch": arch, "protocol": protocol.to_dict(),
                "method_config": dataclasses.asdict(condenser.config), "source_split": train.split,
                "source_fingerprint": train.fingerprint, "source": train.source,
                "touches_full_data": condenser.touches_full_data, "versions": self.versions,
                "machine": self.machine, "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def run_cell(self, cell: Cell, train, test, val, archs, protocol) -> None:
        from condense.evaluate import evaluate

        try:
            condenser = self.condenser(cell.method).for_protocol(protocol)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None
        keys = {a: self.record_key(cell, train, condenser, a, protocol) for a in archs}
        self.refresh()
        todo = self.pending(keys)
        if not todo:
            return
        if not self.writable:
            raise ValueError(f"results folder {self.out} is not writable and {len(todo)} run(s) of "
                             f"{cell.dataset} {cell.method} ipc={cell.ipc} seed={cell.seed} are not done; "
                             "give --out a writable folder")
        label = f"{cell.dataset} {cell.method} ipc={cell.ipc} seed={cell.seed}"
        try:
            synset, path, cached = self.condensed_set(cell, train, condenser)
        except Exception as e:  # noqa: BLE001 - a failed cell is recorded and the sweep goes on
            for a in todo:
                self.write({**self.base_record(cell, train, condenser, a, protocol, keys[a]), "status": "failed",
                            "stage": "condense", "error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc(limit=8)})
            say(f"FAILED condense {label}: {type(e).__name__}: {e}")
            return
        for a in todo:
            rec = self.base_record(cell, train, condenser, a, protocol, keys[a])
            rec.update({"set_path": str(path.relative_to(self.out)), "set_cached": cached,
                        "storage_bytes": synset.storage_bytes, "condense_seconds": synset.condense_seconds,
                        "teacher_seconds": synset.teacher_seconds, "deviations": list(synset.deviations),
                        "set_extra": {k: v for k, v in synset.extra.items() if k != "source_indices"}})
            try:
                res = evaluate(synset, test, arch=a, protocol=protocol, seeds=[cell.seed], device=self.device,
                               val=val, source=train, progress=self.progress,
                               stop_at_targets=self.args.stop_at_targets)
            except Exception as e:  # noqa: BLE001
                rec.update(status="failed", stage="evaluate", error=f"{type(e).__name__}: {e}",
                           traceback=traceback.format_exc(limit=8))
                self.write(rec)
                say(f"FAILED evaluate {label} {a}: {type(e).__name__}: {e}")
                continue
            run = res.runs[0]
            rec.update(status="ok", acc=run.final_acc, curve=run.curve, train_seconds=run.train_seconds,
                       eval_seconds=run.eval_seconds, steps=run.steps, run_extra=run.extra,
                       targets=list(res.targets), tta={k: v["per_seed"][0] for k, v in res.tta_summary().items()},
                       tta_cpu={k: v["cpu"][0] for k, v in res.tta_summary().items()},
                       cpu_seconds=run.cpu_seconds, protocol=res.protocol)
            self.write(rec)

    def pending(self, keys: dict[str, str]) -> list[str]:
        return [a for a, k in keys.items() if self.done.get(k) != "ok" and
                (self.done.get(k) != "failed" or self.args.retry_failed)]

    def write(self, rec: dict) -> None:
        jsonl.append(self.results, clean(rec))
        self.done[rec["key"]] = rec["status"]

    # -- everything

    def run(self) -> int:
        from tqdm.auto import tqdm

        from condense.configs import dataset_config
        from condense.data import DatasetNotFoundError, dataset_kind, load_dataset
        from condense.methods import condenser_class

        plan = []
        for name in self.datasets():
            kind = dataset_kind(name)
            try:
                train = load_dataset(name, "train", root=self.args.data_root)
                test = load_dataset(name, "test", root=self.args.data_root)
                val = load_dataset(name, "val", root=self.args.data_root) if kind == "graphs" else None
            except DatasetNotFoundError as e:
                say(f"skip {name}: {e}")
                continue
            archs = self.args.archs or list(dataset_config(name, kind).archs)
            from condense.models import model_kind

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
            for method in self.methods_for(kind, protocol):
                ipcs = self.args.ipc if condenser_class(method).uses_ipc else [0]
                for ipc in ipcs:
                    for seed in self.args.seeds:
                        plan.append((Cell(name, method, ipc, seed), train, test, val, archs, protocol))
        if not plan:
            say("nothing to run")
        start = time.time()
        for cell, train, test, val, archs, protocol in tqdm(plan, desc="cells", disable=not self.progress, unit="cell"):
            self.run_cell(cell, train, test, val, archs, protocol)
        say(f"sweep finished in {time.time() - start:.1f} s; results in {self.results}")
        from .leaderboard import build

        if not self.results.exists():
            return 0
        md = build([self.out], self.out if self.writable else None)
        if not self.writable:
            say(f"note: {self.out} is read-only: every cell was done, the leaderboard is printed, not written")
        print(md)
        return 0


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
    if any(s < 0 for s in args.seeds):
        raise ValueError(f"--seeds takes integers >= 0, got {args.seeds}")
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


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_args(args)
    except ValueError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        return Sweep(args).run()
    except KeyboardInterrupt:
        say("interrupted: finished cells are saved; run the same command to resume")
        return 130
    except (ValueError, OSError) as e:  # a user error found mid-sweep: finished cells are kept
        from condense.__main__ import one_line

        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
