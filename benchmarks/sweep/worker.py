"""The worker's half of a sweep: condense one set, train it on each architecture and seed, and fill
the records; it writes nothing (the driver is the only writer)."""
from __future__ import annotations

import dataclasses
import math
import traceback
from pathlib import Path

from condense._log import say
from condense.evaluate import evaluate, resolve_device
from condense.format import pack_graphs

from ..provenance import machine
from .plan import Cell

def clock_problems(rec: dict) -> list[str]:
    """The clock invariants every record must hold (docs/design.md §4): every time is finite and >= 0 or
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
    x, pre = synset.extra, preprocessing_label(synset, train)
    set_fields = {"set_path": job.set_path, "set_cached": new is None, "storage_bytes": synset.storage_bytes,
                  "reads_bytes": source_bytes(train) if job.condenser.touches_full_data else synset.storage_bytes["total"],
                  "condense_seconds": synset.condense_seconds, "condense_cpu_seconds": x.get("condense_cpu_seconds"),
                  "teacher_seconds": synset.teacher_seconds,
                  "teacher_cpu_seconds": x.get("teacher_cpu_seconds", None if synset.teacher_seconds else 0.0),
                  "deviations": list(synset.deviations),
                  "set_extra": {k: v for k, v in x.items() if k != "source_indices"},
                  **({"preprocessing": pre} if pre else {}),
                  **({"released": True, "release": synset.release} if synset.release else {})}
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


def preprocessing_label(synset, train) -> str | None:
    """How a set's inputs differ from the suite's pipeline for its dataset (None: they do not): ZCA,
    or another codebase's Normalize constants. Rows group by it, as by any other config."""
    zca = synset.preprocessing.get("zca") if synset.kind == "images" else None
    if zca:
        return f"ZCA eps {zca['eps']:g} ({'standardized' if zca['normalized'] else '[0, 1]'} pixels, fitted on {zca['fitted_on']})"
    if synset.kind == "images" and (tuple(synset.mean) != tuple(train.mean) or tuple(synset.std) != tuple(train.std)):
        return (f"Normalize mean ({', '.join(f'{v:g}' for v in synset.mean)}) std "
                f"({', '.join(f'{v:g}' for v in synset.std)})")
    return None


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
    rec["devices"] = 1   # one device per run; device-hours = seconds × devices
    rec["device_hours"] = ((rec.get("condense_seconds") or 0.0) + (run.train_seconds or 0.0)) / 3600.0
    problems = clock_problems(rec)
    if problems:
        rec.update(status="failed", stage="clocks", error="clock invariant broken: " + "; ".join(problems))
        say(f"FAILED clocks {label}: {'; '.join(problems)}")
    return rec
