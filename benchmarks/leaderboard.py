"""Leaderboards from one or more runs: ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.html``.

    python -m benchmarks.leaderboard runs/default [runs/other ...] [--out DIR]

One table per dataset, architecture and full evaluated configuration (every protocol field, the
step budget): records that differ in anything never average together, and a table's heading names
what sets it apart from its neighbours. Rows are methods at each IPC and resolved config, from the
newest code identity of each cell (``--all-versions`` shows the older ones, labelled). Columns give
accuracy mean ± std, n (sets × trainings), the 95 % interval, steps and samples seen, time-to-
accuracy at each target with and without teacher time (speedups against ``full`` only on matching
checkpoint grids), condense, teacher and train seconds, storage bytes and what training reads.
DD-Ranking scores (HLR, IOR, LRS, ARS) follow where their rows exist. Two records of the same cell,
seeds, configuration and code stop the leaderboard with an error naming both lines. The HTML page
embeds plots: accuracy against IPC, against time, and against storage bytes.
"""
from __future__ import annotations

import argparse
import base64
import csv
import functools
import html
import io
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from condense._log import note
from condense._paths import atomic_write
from condense.evaluate import time_to_accuracy
from condense.identity import identity_key

from . import jsonl
from .plots import plots  # noqa: F401  (the page embeds them; `python -m benchmarks.leaderboard` writes them)

FULL_MARK = "†"


class DuplicateRecords(ValueError):
    """Two records of the same cell, seeds, configuration and code: a table cannot count both."""


def load_records(dirs) -> tuple[list[dict], list[dict]]:
    """(ok records, failed records) over run folders, each tagged with ``_where`` (file:line).

    A line that does not parse, or a record without the fields a table needs, is skipped with a
    note; the files themselves are never changed. A failed record whose cell later succeeded is
    dropped (``--retry-failed`` appends the success)."""
    ok, failed = [], {}
    for d in dirs:
        d = Path(d)
        path = d / "results.jsonl" if d.is_dir() else d
        if not path.exists():
            raise SystemExit(f"error: no results.jsonl in {d}")
        skipped, why = 0, ""
        for line, rec in jsonl.read_numbered(path):
            problem = "does not parse" if rec is None else jsonl.malformed(rec)
            if problem:
                skipped += 1
                why = why or f" (line {line}: {problem})"
                continue
            rec = normalise(rec)
            rec["_where"] = f"{path}:{line}"
            if rec["status"] == "ok":
                ok.append(rec)
            else:
                failed[rec["key"]] = rec
        if skipped:
            note(f"skipped {skipped} unusable line(s) in {path}{why}")
    done = {r["key"] for r in ok}
    return ok, [r for k, r in failed.items() if k not in done]


def normalise(r: dict) -> dict:
    """A record in today's terms: records from older code lack the budget rule (they trained the
    epoch rule), a training seed of their own (they used the set seed) and a code identity."""
    r = dict(r)
    p = dict(r["protocol"])
    if "budget" not in p:
        p["budget"] = "epochs"
        r["legacy_budget"] = True
    r["protocol"] = p
    r.setdefault("train_seed", r["seed"])
    r["identity"] = identity_key(r.get("code"))
    plan = dict(r.get("plan") or {})
    if not plan.get("steps"):
        plan["steps"] = r.get("planned_steps") or (r.get("run_extra") or {}).get("planned_steps") or r.get("steps")
    if plan.get("steps") and not plan.get("checkpoint_every"):
        plan["checkpoint_every"] = plan["steps"] / max(1, min(p.get("checkpoints", 50), plan["steps"]))
    r["plan"] = plan
    return r


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


UNRECORDED = "unrecorded"


def measured_on(r: dict) -> dict:
    """What a record was measured on and how, beyond its protocol: the device kind (``cpu``, ``mps``,
    ``cuda (GPU name)``), the source data's fingerprint, the curve method and whether TF32 was allowed.
    Older records carry what they recorded (the device from their machine, the curve method from the
    run's curve record) and ``unrecorded`` for the rest, so they group apart rather than with today's."""
    extra = r.get("run_extra") or {}
    m = r.get("machine") or {}
    device = r.get("device_kind") or m.get("device_kind")
    if device is None and m.get("device"):
        kind = str(m["device"]).split(":")[0]
        device = f"cuda ({m['gpu']})" if kind == "cuda" and m.get("gpu") else kind
    curve = r.get("curve_method") or (extra.get("curve") or {}).get("method")
    tf32 = extra.get("tf32")
    if tf32 is None and device in ("cpu", "mps"):
        tf32 = False  # TF32 is a CUDA mode: a CPU run never had it
    return {"device": device or UNRECORDED, "source": r.get("source_fingerprint") or UNRECORDED,
            "curve": curve or UNRECORDED, "tf32": UNRECORDED if tf32 is None else bool(tf32)}


CONTEXT_FIELDS = ("device", "source", "curve", "tf32")


def table_key(r: dict) -> tuple:
    """What a table's rows share: dataset, architecture, the protocol in full, stopped early, compiled,
    stacked seeds, then :func:`measured_on` (device kind, source fingerprint, curve method, TF32)."""
    ctx = measured_on(r)
    return (r["dataset"], r["arch"], _canon(r["protocol"]), bool(r.get("stop_at_targets") or
                                                              (r.get("run_extra") or {}).get("stopped_early")),
            bool(r.get("compile")), int(r.get("together") or 1), *(str(ctx[f]) for f in CONTEXT_FIELDS))


def cell_key(r: dict) -> tuple:
    return (*table_key(r), r["method"], r["ipc"], _canon(r.get("method_config", {})))


def newest_only(records: list[dict]) -> tuple[list[dict], int]:
    """Per cell, the records of the newest code identity (the one whose latest record is newest);
    returns them and how many older records were set aside."""
    by_cell: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_cell[cell_key(r)][r["identity"]].append(r)
    keep, hidden = [], 0
    for ids in by_cell.values():
        newest = max(ids, key=lambda i: max(str(r.get("created_utc", "")) for r in ids[i]))
        keep += ids[newest]
        hidden += sum(len(v) for i, v in ids.items() if i != newest)
    return keep, hidden


def check_duplicates(records: list[dict]) -> None:
    """Two ok records of one cell, set seed, training seed and code identity stop the leaderboard."""
    seen: dict[tuple, dict] = {}
    for r in records:
        k = (*cell_key(r), r["seed"], r["train_seed"], r["identity"])
        if k in seen:
            raise DuplicateRecords(f"duplicate records for {r['dataset']} {r['method']} ipc={r['ipc']} "
                                   f"seed={r['seed']} train seed={r['train_seed']} {r['arch']} "
                                   f"{r['protocol'].get('name')}: {seen[k]['_where']} and {r['_where']}")
        seen[k] = r


def protocol_label(p: dict) -> str:
    aug = p.get("augment") or "no aug"
    freq = ", frequencies once per epoch" if p.get("frequency_mode") == "once" else ""
    budget = "" if p.get("budget", "epochs") == "steps" else " · epoch budget (each set its own epochs)"
    return f"{p['name']} v{p['version']} ({p['preset']}, {p['epochs']} epochs, {aug}{freq}){budget}"


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def _all_or_none(xs):
    """The mean when every record has the value, else None (unmeasured: never a partial mean)."""
    xs = list(xs)
    return statistics.fmean(xs) if xs and all(x is not None for x in xs) else None


def ci95(xs: list[float]) -> float | None:
    """Half-width of the 95 % confidence interval of the mean (Student t, sample std)."""
    if len(xs) < 2:
        return None
    from scipy.stats import t

    return float(t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs)))


def condense_seconds(r: dict, clock: str, teacher: bool = True) -> float | None:
    """A record's condense seconds on ``clock``; None when that clock was not measured. Without
    ``teacher``, the teacher pool's cost on the same clock is taken out."""
    if clock == "cpu":
        c = r.get("condense_cpu_seconds", (r.get("set_extra") or {}).get("condense_cpu_seconds"))
        t = r.get("teacher_cpu_seconds", (r.get("set_extra") or {}).get("teacher_cpu_seconds",
                                                                           0.0 if not r.get("teacher_seconds") else None))
    else:
        c, t = r.get("condense_seconds"), r.get("teacher_seconds") or 0.0
    if c is None or (not teacher and t is None):
        return None
    return c - (0.0 if teacher else t)


def record_tta(r: dict, target: float, clock: str, teacher: bool = True) -> float | None:
    """Time-to-accuracy of one record, recomputed from its curve: condense seconds (on the same
    clock) + train seconds at the first checkpoint at or above ``target``."""
    key = "cpu_seconds" if clock == "cpu" else "train_seconds"
    offset = condense_seconds(r, clock, teacher)
    if offset is None:
        return None
    return time_to_accuracy(r.get("curve", []), target, offset, key)


def _tta_cell(rs: list[dict], t: float, clock: str, teacher: bool) -> dict:
    time_key = "cpu_seconds" if clock == "cpu" else "train_seconds"
    unmeasured = sum(1 for r in rs if condense_seconds(r, clock, teacher) is None
                     or any(time_key not in c for c in r.get("curve", [])))
    vals = [record_tta(r, t, clock, teacher) for r in rs]
    reached = [v for v in vals if v is not None]
    return {"mean": statistics.fmean(reached) if reached and len(reached) == len(vals) else None,
            "reached": len(reached), "n": len(vals), "unmeasured": unmeasured}


def aggregate(records: list[dict], clock: str = "wall", all_versions: bool = False) -> dict:
    """Tables keyed by (dataset, arch, protocol in full, stopped-at-targets, compiled, stacked seeds); rows
    by method, IPC, resolved config (and code identity with ``all_versions``). Nothing that differs
    averages together."""
    records = [r if "identity" in r else normalise(r) for r in records]
    check_duplicates(records)
    hidden = 0
    if not all_versions:
        records, hidden = newest_only(records)
    grouped: dict[tuple, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        ident = r["identity"] if all_versions else ""
        grouped[table_key(r)][(r["method"], r["ipc"], _canon(r.get("method_config", {})), ident)].append(r)
    tables = {}
    for tkey, rows in grouped.items():
        agg = [_row(rs, clock) for rs in rows.values()]
        _label_rows(agg, all_versions)
        agg.sort(key=lambda a: (a["ipc"] if a["ipc"] else 10 ** 9, a["method"], a["method_label"]))
        p = next(iter(rows.values()))[0]["protocol"]
        tables[tkey] = {"rows": agg, "protocol_dict": p, "heading": "", "notes": [], "hidden": 0}
    _headings(tables)
    add_speedups(tables)
    add_byte_matches(tables)
    from . import scores

    scores.compute(tables)
    if hidden:
        first = next(iter(tables.values()), None)
        if first is not None:
            first["notes"].append(f"{hidden} record(s) from older code are not shown (--all-versions shows them)")
    return dict(sorted(tables.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[1]["heading"])))


PAPER_RUNS, PAPER_KEPT = 10, 5


def best_val_auc_point(curve: list[dict]) -> dict | None:
    """The checkpoint with the best validation ROC-AUC, ties to the later one (the official Mirage
    scripts keep a test score whenever ``best_val <= val``); None without validation ROC-AUC."""
    pts = [c for c in curve if c.get("val_auc") is not None and c.get("auc") is not None]
    return max(reversed(pts), key=lambda c: c["val_auc"]) if pts else None


def paper_aggregate(rs: list[dict]) -> dict | None:
    """The official Mirage scripts' report (§ Experiments; ``graph-*-finalize-*.py``): of the first 10
    runs, each at its best-validation-ROC-AUC checkpoint, the 5 with the highest validation ROC-AUC;
    mean and (population) std of their test ROC-AUC. It selects on validation only, yet keeps the luckiest
    half of the runs, so it is shown apart and never replaces the mean over all runs. None when a row
    has fewer than 10 runs or its curves lack validation ROC-AUC."""
    if len(rs) < PAPER_RUNS:
        return None
    pts = [best_val_auc_point(r.get("curve") or []) for r in rs[:PAPER_RUNS]]
    if any(p is None for p in pts):
        return None
    order = sorted(range(PAPER_RUNS), key=lambda i: -pts[i]["val_auc"])[:PAPER_KEPT]  # stable: earlier run on ties
    kept = [pts[i] for i in order]
    return {"runs": PAPER_RUNS, "kept": PAPER_KEPT, "seeds": [(rs[i]["seed"], rs[i].get("train_seed", rs[i]["seed"])) for i in order],
            "auc": statistics.fmean(p["auc"] for p in kept), "auc_std": statistics.pstdev([p["auc"] for p in kept]),
            "acc": statistics.fmean(p["acc"] for p in kept), "acc_std": statistics.pstdev([p["acc"] for p in kept]),
            "val_auc": statistics.fmean(p["val_auc"] for p in kept)}


def _row(rs: list[dict], clock: str) -> dict:
    time_key = "cpu_seconds" if clock == "cpu" else "train_seconds"
    rs = sorted(rs, key=lambda r: (r["seed"], r["train_seed"]))
    accs = [r["acc"] for r in rs]
    first = rs[0]
    targets = first.get("targets", [])
    steps = sorted({r["plan"].get("steps") for r in rs} - {None})
    samples = sorted({r["plan"].get("samples") for r in rs} - {None})
    every = sorted({r["plan"].get("checkpoint_every") for r in rs} - {None})
    sets = len({r["seed"] for r in rs})
    parts = {k: _mean(r.get("storage_bytes", {}).get(k) for r in rs) for k in first.get("storage_bytes", {}) if k != "total"}
    return {
        "dataset": first["dataset"], "arch": first["arch"], "protocol": protocol_label(first["protocol"]),
        "recipe": (first["protocol"]["name"], first["protocol"]["preset"]), "method": first["method"],
        "method_label": first["method"], "ipc": first["ipc"], "config": first.get("method_config", {}),
        "config_key": _canon(first.get("method_config", {})), "identity": first["identity"],
        "legacy": bool(first.get("legacy_budget")) or first["identity"] == "no identity",
        "n": len(rs), "sets": sets, "trainings": len(rs) // max(1, sets),
        "deterministic": bool(first.get("deterministic")),
        "seeds": [r["seed"] for r in rs], "train_seeds": [r["train_seed"] for r in rs], "accs": accs,
        "mean": statistics.fmean(accs), "std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
        "ci95": ci95(accs), "steps": steps[0] if len(steps) == 1 else None, "samples": samples[0] if len(samples) == 1
        else None, "checkpoint_every": every[0] if len(every) == 1 else None,
        "budget": first["protocol"].get("budget"),
        "stopped_early": any((r.get("run_extra") or {}).get("stopped_early") for r in rs),
        "tta": {f"{t:g}": _tta_cell(rs, t, clock, True) for t in targets},
        "tta_no_teacher": {f"{t:g}": _tta_cell(rs, t, clock, False) for t in targets}, "targets": targets,
        "condense_seconds": _all_or_none(condense_seconds(r, clock) for r in rs),
        "teacher_seconds": _all_or_none(condense_seconds(r, clock) - condense_seconds(r, clock, False)
                                        if condense_seconds(r, clock, False) is not None else None for r in rs),
        "train_seconds": _all_or_none(r.get(time_key) for r in rs),
        "bytes": _mean(r.get("storage_bytes", {}).get("total") for r in rs), "parts": parts,
        "reads": _mean(r.get("reads_bytes") for r in rs),
        "touches_full_data": any(r.get("touches_full_data") for r in rs),
        "soft_labels": bool(parts.get("soft_labels")),
        "roc_auc": _mean((r.get("run_extra") or {}).get("roc_auc") for r in rs),
        "roc_auc_std": _pstdev((r.get("run_extra") or {}).get("roc_auc") for r in rs),
        "paper": paper_aggregate(rs),
        "curves": [(condense_seconds(r, clock) or 0.0,
                    [(c[time_key], c["acc"], c.get("on", "full") == "full") for c in r.get("curve", []) if time_key in c])
                   for r in rs],
        "source": first.get("source", ""), "measured": measured_on(first),
    }


def _label_rows(rows: list[dict], all_versions: bool) -> None:
    """Rows of one method and IPC that differ in config say how; older code says so too."""
    by = defaultdict(list)
    for a in rows:
        by[(a["method"], a["ipc"])].append(a)
    for same in by.values():
        if len({a["config_key"] for a in same}) > 1:
            keys = sorted({k for a in same for k in a["config"]})
            varying = [k for k in keys if len({_canon(a["config"].get(k)) for a in same}) > 1]
            for a in same:
                a["method_label"] += " [" + ", ".join(f"{k}={a['config'].get(k)}" for k in varying) + "]"
    for a in rows:  # rows not from today's code say so (all of them with --all-versions)
        if all_versions or a["identity"] != current_identity(a["method"]):
            a["method_label"] += f" ⟨{a['identity'] if a['identity'] == 'no identity' else 'code ' + a['identity']}⟩"


@functools.lru_cache(maxsize=None)
def current_identity(method: str) -> str | None:
    """The code identity a record of ``method`` would carry if it were made now (None: unknown method)."""
    from condense.identity import code_identity
    from condense.methods import condenser_module

    try:
        return identity_key(code_identity(condenser_module(method)))
    except ValueError:
        return None


def _headings(tables: dict) -> None:
    """A table's heading: its protocol, plus every field that sets it apart from tables of the same
    dataset, architecture and protocol name."""
    fam = defaultdict(list)
    for k, t in tables.items():
        fam[(k[0], k[1], t["protocol_dict"].get("name"))].append(k)
    shown = {"name", "version", "preset", "epochs", "augment", "budget", "frequency_mode"}
    for keys in fam.values():
        fields = sorted({f for k in keys for f in tables[k]["protocol_dict"]})
        varying = [f for f in fields if f not in shown and
                   len({_canon(tables[k]["protocol_dict"].get(f)) for k in keys}) > 1]
        measured = {k: tables[k]["rows"][0]["measured"] for k in keys}
        differ = [f for f in CONTEXT_FIELDS if len({str(m[f]) for m in measured.values()}) > 1]
        for k in keys:
            t = tables[k]
            extra = [f"{f}={t['protocol_dict'].get(f)}" for f in varying]
            extra += [_context_label(f, str(measured[k][f]), t) for f in differ]
            if k[3]:
                extra.append("stopped at the top target")
            if k[4]:
                extra.append("compiled training (torch.compile)")
            if len(k) > 5 and k[5] > 1:
                extra.append(f"up to {k[5]} training seeds stacked (seconds per model)")
            t["heading"] = " · ".join([protocol_label(t["protocol_dict"]), *extra])


def _context_label(field: str, value: str, table: dict) -> str:
    """How a heading names a :func:`measured_on` field that differs from a neighbouring table's."""
    if field == "device":
        return f"measured on {value}"
    if field == "source":
        src = table["rows"][0].get("source") or ""
        return f"source {value[:12]}" + (f" ({src})" if src else "")
    if field == "curve":
        return {"full": "exhaustive curve", "screened": "screened curve"}.get(value, f"curve {value}")
    return {"True": "TF32 allowed", "False": "no TF32"}.get(value, f"TF32 {value}")


def _pstdev(xs):
    xs = [x for x in xs if x is not None]
    return statistics.pstdev(xs) if len(xs) > 1 else (0.0 if xs else None)


BYTE_MATCHED = ("mirage",)   # methods whose storage is set beside random subsets of comparable bytes


def add_byte_matches(tables: dict) -> None:
    """For graph summaries (Mirage): the ``random`` row of the same table whose storage bytes are
    closest (in ratio) to the row's, so a reader sees the equal-bytes comparison directly."""
    for t in tables.values():
        rows = t["rows"]
        randoms = [a for a in rows if a["method"] == "random" and a["bytes"]]
        for a in rows:
            if a["method"] not in BYTE_MATCHED or not randoms or not a["bytes"]:
                continue
            best = min(randoms, key=lambda r: (abs(math.log(r["bytes"] / a["bytes"])), r["ipc"]))
            a["byte_match"] = {"ipc": best["ipc"], "mean": best["mean"], "std": best["std"],
                               "roc_auc": best["roc_auc"], "ratio": best["bytes"] / a["bytes"]}


def add_speedups(tables: dict) -> None:
    """TTA speedup of a row against ``full``: the ``full`` row of its own table at its IPC, else one
    trained by the same recipe elsewhere on the same kind of device and the same source data. A speedup is shown only when both rows put their test
    checkpoints on the same grid of steps; otherwise the cell says why there is none."""
    def ref_key(a):  # a reference elsewhere: the same recipe, measured on the same kind of device and data
        return a["dataset"], a["arch"], a["recipe"], a["measured"]["device"], a["measured"]["source"]

    refs: dict[tuple, list[dict]] = defaultdict(list)
    for t in tables.values():
        for a in t["rows"]:
            if a["method"] == "full":
                refs[ref_key(a)].append(a)
    for t in tables.values():
        for a in t["rows"]:
            a["speedup"], a["speedup_note"] = {}, None
            if a["method"] == "full":
                continue
            same = [r for r in t["rows"] if r["method"] == "full" and r["ipc"] == a["ipc"]]
            cands = same or refs.get(ref_key(a), [])
            if not cands:
                continue
            ref = cands[0]
            if a["checkpoint_every"] is None or ref["checkpoint_every"] is None or \
                    abs(a["checkpoint_every"] - ref["checkpoint_every"]) > 1e-9:
                a["speedup_note"] = (f"{a['method']} (IPC {a['ipc'] or 'all'}) checks every "
                                     f"{_steps(a['checkpoint_every'])} steps, full every "
                                     f"{_steps(ref['checkpoint_every'])}: no speedup on different grids")
                t.setdefault("off_grid", []).append((f"{a['method']} (IPC {a['ipc'] or 'all'})",
                                                     a["checkpoint_every"], ref["checkpoint_every"]))
                continue
            for k, v in a["tta"].items():
                r = ref["tta"].get(k)
                if r and r["mean"] is not None and v["mean"]:
                    a["speedup"][k] = r["mean"] / v["mean"]
    for t in tables.values():
        by_grid = defaultdict(list)
        for label, every, ref_every in t.pop("off_grid", []):
            by_grid[(every, ref_every)].append(label)
        for (every, ref_every), labels in by_grid.items():
            t["notes"].append(f"No TTA speedup for {', '.join(labels)}: test checkpoints every {_steps(every)} steps, "
                              f"`full`'s every {_steps(ref_every)} (speedups only on the same grid)")


def _steps(x) -> str:
    return "?" if x is None else f"{x:g}"


# ----------------------------------------------------------------------------- formatting


def fmt_seconds(s) -> str:
    if s is None:
        return "—"
    return f"{s:.1f}" if s < 1000 else f"{s:,.0f}"


def fmt_bytes(b) -> str:
    if b is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:,.0f} {unit}" if unit == "B" else f"{b:,.1f} {unit}"
        b /= 1024
    return ""


def fmt_tta(v: dict, speedup: float | None = None, no_teacher: dict | None = None) -> str:
    if v.get("unmeasured"):
        return "—"
    if v["mean"] is not None:
        out = fmt_seconds(v["mean"]) + (f" (×{speedup:.1f})" if speedup is not None and speedup >= 1 else
                                        f" (×{speedup:.2g})" if speedup is not None else "")
        if no_teacher is not None and no_teacher.get("mean") is not None and no_teacher["mean"] < v["mean"] - 1e-9:
            out += f" [{fmt_seconds(no_teacher['mean'])} w/o teachers]"
        return out
    return f"n.r. ({v['reached']}/{v['n']})"


def fmt_n(a: dict) -> str:
    if a["deterministic"] and a["sets"] == 1:
        return f"1 set × {a['trainings']}"
    return f"{a['sets']} × {a['trainings']}" if a["trainings"] > 1 else str(a["n"])


def fmt_steps(a: dict) -> str:
    if a["steps"] is None:
        return "—"
    return f"{a['steps']:,}" + (f" ({a['samples']:,})" if a.get("samples") else "")


def row_cells(a: dict) -> list[str]:
    ipc = "all" if not a["ipc"] else str(a["ipc"])
    method = a["method_label"] + (f" {FULL_MARK}" if a["touches_full_data"] else "")
    acc = f"{a['mean']:.2f} ± {a['std']:.2f}"
    if a.get("stopped_early"):
        acc = f"stopped at targets ({a['mean']:.2f})"
    ci = "—" if a["ci95"] is None else f"±{a['ci95']:.2f}"
    cells = [ipc, method, acc, fmt_n(a), ci]
    if a["roc_auc"] is not None:
        std = a.get("roc_auc_std")
        cells.append(f"{a['roc_auc']:.1f}" + (f" ± {std:.1f}" if std is not None and a["n"] > 1 else ""))
    cells.append(fmt_steps(a))
    cells += [fmt_tta(a["tta"][f"{t:g}"], a.get("speedup", {}).get(f"{t:g}"), a["tta_no_teacher"].get(f"{t:g}"))
              for t in a["targets"]]
    teacher = a["teacher_seconds"]
    cells += [fmt_seconds(a["condense_seconds"]) + (f" ({fmt_seconds(teacher)})" if teacher else ""),
              fmt_seconds(a["train_seconds"]), fmt_bytes(a["bytes"]) + fmt_parts(a.get("parts", {})),
              fmt_bytes(a["reads"]) if a["reads"] is not None else ("the full split" if a["touches_full_data"]
                                                                    else fmt_bytes(a["bytes"]))]
    return cells


PART_NAMES = {"images": "img", "soft_labels": "soft", "compensators": "comp", "indices": "idx", "graphs": "graphs",
              "replay": "replay views"}


def fmt_parts(parts: dict) -> str:
    """A breakdown when a set stores more than images and labels (soft labels, compensators); with
    replay labels (per-epoch logits and the views they label) also their share of the total."""
    shown = {k: v for k, v in parts.items() if k not in ("labels",) and v}
    if len(shown) < 2:
        return ""
    out = " · ".join(f"{PART_NAMES.get(k, k)} {fmt_bytes(v)}" for k, v in shown.items())
    if shown.get("replay"):
        total = sum(v for k, v in parts.items() if k != "total" and v)
        share = (shown.get("soft_labels", 0) + shown["replay"]) / max(1, total)
        out += f" · replay labels {100 * share:.0f} %"
    return f" ({out})"


def match_cell(a: dict) -> str:
    m = a.get("byte_match")
    if not m:
        return "—"
    return f"{m['mean']:.2f} ± {m['std']:.2f} (IPC {m['ipc']}, {m['ratio']:.2f}× bytes)"


def table_cells(a: dict, rows: list[dict], h: list[str]) -> list[str]:
    """A row's cells aligned with the table's header (ROC-AUC and byte-match columns when present)."""
    cells = row_cells(a)
    has_match = any(r.get("byte_match") for r in rows)
    if len(cells) + has_match < len(h):  # a row without ROC-AUC in a table that has it
        cells.insert(5, "—")
    if has_match:
        cells.append(match_cell(a))
    return cells


def header(rows: list[dict]) -> list[str]:
    h = ["IPC", "method", "acc % mean ± std", "n", "95 % CI"]
    if any(a["roc_auc"] is not None for a in rows):
        h.append("ROC-AUC %")
    h.append("steps (samples)")
    targets = rows[0]["targets"] if rows else []
    h += [f"TTA@{t:g}% s" for t in targets]
    h += ["condense s (teacher s)", "train s", "storage", "training reads"]
    if any(a.get("byte_match") for a in rows):
        h.append("random at ≈ bytes: acc % (IPC, its bytes ×)")
    return h


def dataset_label(dataset: str, source: str) -> str:
    """The dataset's name, marked when the data is the lossy JPEG copy (results must say so)."""
    return f"{dataset} (JPEG copy)" if "JPEG" in (source or "") else dataset


def fmt_score(x) -> str:
    return "—" if x is None else f"{x:+.4f}" if abs(x) < 1 else f"{x:.4f}"


def score_rows(tables: dict) -> list[dict]:
    return [{**a["scores"], "dataset": a["dataset"], "arch": a["arch"], "method": a["method_label"], "ipc": a["ipc"],
             "table": t["heading"]} for t in tables.values() for a in t["rows"] if a.get("scores")]


def paper_table(rows: list[dict]) -> list[str]:
    """The rows that have a ``paper`` aggregation, as a labelled table of its own (markdown lines)."""
    have = [a for a in rows if a.get("paper")]
    if not have:
        return []
    out = [f"Paper aggregation (the official Mirage scripts): per run the checkpoint with the best validation "
           f"ROC-AUC; of the first {PAPER_RUNS} runs the {PAPER_KEPT} with the highest validation ROC-AUC. It keeps "
           "the luckier half of the runs, so it reads higher than the mean over all runs above, which stays the "
           "default.", "",
           "| IPC | method | storage | test ROC-AUC, paper aggregation | test acc % | val ROC-AUC of the kept runs "
           "| runs kept |", "|---|---|---|---|---|---|---|"]
    for a in have:
        p = a["paper"]
        sets = [s for s, _ in p["seeds"]]
        kept = (f"{p['kept']} of {p['runs']}: set seeds {', '.join(map(str, sets))}" if len(set(a["seeds"])) > 1
                else f"{p['kept']} of {p['runs']} training seeds of set {sets[0]}")
        out.append(f"| {a['ipc']} | {a['method_label']} | {fmt_bytes(a['bytes'])} | {p['auc']:.1f} ± {p['auc_std']:.1f} "
                   f"| {p['acc']:.2f} ± {p['acc_std']:.2f} | {p['val_auc']:.1f} | {kept} |")
    return out + [""]


def markdown(tables: dict, failed: list[dict], clock: str = "wall") -> str:
    lines = ["# Leaderboard", ""]
    if clock == "cpu":
        lines += ["Time-to-accuracy, condense, teacher and train seconds on the process CPU-time clock (single-"
                  "threaded runs); a record that did not measure a part on this clock shows \"—\".", ""]
    for (dataset, arch, *_), t in tables.items():
        rows = t["rows"]
        src = rows[0]["source"]
        lines += [f"## {dataset_label(dataset, src)} · {arch} · {t['heading']}", ""]
        if src:
            lines += [f"Source: {src}." + (" Results on this lossy JPEG copy of the dataset are not results on "
                                            "the original." if "JPEG" in src else ""), ""]
        if any(a["legacy"] for a in rows):
            lines += ["Some rows come from records made before the step budget, separate training seeds and code "
                      "identity were recorded (legacy): they trained under the epoch rule and stand apart from "
                      "equal-step tables.", ""]
        h = header(rows)
        lines.append("| " + " | ".join(h) + " |")
        lines.append("|" + "|".join("---" for _ in h) + "|")
        for a in rows:
            lines.append("| " + " | ".join(table_cells(a, rows, h)) + " |")
        lines.append("")
        lines += paper_table(rows)
        for n in dict.fromkeys(t["notes"]):
            lines.append(f"- {n}")
        if t["notes"]:
            lines.append("")
    sc = score_rows(tables)
    if sc:
        lines += ["## DD-Ranking scores", "",
                  "Accuracies as fractions, from rows of the tables above at the same budget: HLR = acc(full, hard) "
                  "− acc(set, hard); IOR = acc(set) − acc(random real images, same label pipeline); LRS = "
                  "(e^α − e^−1)/(e − e^−1), α = (IOR − HLR)/2; ARS: the same over β = ½Δ(with aug) + ½Δ(without).",
                  "", "| dataset | arch | method | IPC | own table | HLR | IOR | LRS | ARS | missing |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for s in sc:
            lines.append(f"| {s['dataset']} | {s['arch']} | {s['method']} | {s['ipc']} | {s['table']} | "
                         f"{fmt_score(s['hlr'])} | {fmt_score(s['ior'])} | {fmt_score(s['lrs'])} | "
                         f"{fmt_score(s['ars'])} | {'; '.join(s['notes']) or '—'} |")
        lines.append("")
    lines += [f"{FULL_MARK} touches the full training set; \"training reads\" counts what a run reads (the whole "
              "split for these, the stored parts otherwise). n = sets × trainings per set; the 95 % CI is the "
              "half-width of the interval of the mean (Student t). Steps are optimizer steps (samples seen). TTA = "
              "condense seconds (teachers at their recorded cost) + train seconds to the first checkpoint at or "
              "above the target test accuracy, with the time without teachers in brackets where it differs; "
              "\"n.r. (k/n)\": only k of n runs reached it; (×s): speedup against `full` on the same checkpoint "
              "grid; \"—\": not measured on this clock. Storage counts every stored part (images, labels, soft "
              "labels, compensators, schedules, summaries).", ""]
    if any(a.get("byte_match") for t in tables.values() for a in t["rows"]):
        lines += ["Graph summaries (Mirage) carry no IPC of graphs: their last column is the `random` row of the "
                  "same table whose storage is closest to theirs, with that row's IPC and its bytes relative to "
                  "the summary's. ROC-AUC is mean ± std over the same runs as accuracy.", ""]
    if failed:
        lines += ["## Failed cells", ""]
        for r in sorted(failed, key=lambda r: (r["dataset"], r["method"], r["ipc"], r["seed"])):
            lines.append(f"- {r['dataset']} {r['method']} ipc={r['ipc']} seed={r['seed']} {r.get('arch', '')}: "
                         f"{r.get('error', '?')}")
        lines.append("")
    return "\n".join(lines)


CSV_COLS = ["dataset", "arch", "protocol", "budget", "method", "ipc", "config", "code", "n", "sets", "trainings",
            "seeds", "train_seeds", "mean", "std", "ci95", "accs", "steps", "samples", "checkpoint_every", "tta",
            "tta_no_teacher", "speedup", "condense_seconds", "teacher_seconds", "train_seconds", "bytes",
            "bytes_by_part", "reads_bytes", "touches_full_data", "roc_auc", "roc_auc_std", "bytes_matched_random",
            "hlr", "ior", "lrs", "ars", "source", "paper_roc_auc", "paper_roc_auc_std"]


def write_csv(tables: dict, f) -> None:
    """The table rows as CSV into the text stream ``f``."""
    w = csv.writer(f)
    w.writerow(CSV_COLS)

    def tta(d):
        return ";".join(f"{t}:{v['mean'] if v['mean'] is not None else 'n.r.'}" for t, v in d.items())

    for t in tables.values():
        for a in t["rows"]:
            sc = a.get("scores") or {}
            w.writerow([a["dataset"], a["arch"], t["heading"], a["budget"], a["method"], a["ipc"],
                        _canon(a["config"]), a["identity"], a["n"], a["sets"], a["trainings"],
                        " ".join(map(str, a["seeds"])), " ".join(map(str, a["train_seeds"])), f"{a['mean']:.4f}",
                        f"{a['std']:.4f}", "" if a["ci95"] is None else f"{a['ci95']:.4f}",
                        " ".join(f"{x:.4f}" for x in a["accs"]), a["steps"], a["samples"], a["checkpoint_every"],
                        tta(a["tta"]), tta(a["tta_no_teacher"]),
                        ";".join(f"{k}:{v:.3f}" for k, v in a.get("speedup", {}).items()),
                        a["condense_seconds"], a["teacher_seconds"], a["train_seconds"], a["bytes"],
                        ";".join(f"{k}:{v:.0f}" for k, v in a.get("parts", {}).items() if v is not None),
                        a["reads"], a["touches_full_data"], "" if a["roc_auc"] is None else a["roc_auc"],
                        "" if a.get("roc_auc_std") is None else a["roc_auc_std"],
                        match_cell(a) if a.get("byte_match") else "",
                        *["" if sc.get(k) is None else f"{sc[k]:.6f}" for k in ("hlr", "ior", "lrs", "ars")],
                        a["source"], *(("", "") if not a.get("paper") else
                                       (f"{a['paper']['auc']:.4f}", f"{a['paper']['auc_std']:.4f}"))])


def html_page(tables: dict, failed: list[dict], pngs: dict[str, bytes]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>condense leaderboard</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:nth-child(2),th:nth-child(2){text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%}</style></head><body><h1>condense leaderboard</h1>"]
    for tkey, t in tables.items():
        rows = t["rows"]
        title = f"{tkey[0]} · {tkey[1]} · {t['heading']}"
        heading = f"{dataset_label(tkey[0], rows[0]['source'])} · {tkey[1]} · {t['heading']}"
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if rows[0]["source"]:
            parts.append(f"<p>Source: {html.escape(rows[0]['source'])}</p>")
        h = header(rows)
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in h) + "</tr>")
        for a in rows:
            cells = table_cells(a, rows, h)
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
        if t["notes"]:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in dict.fromkeys(t["notes"])) + "</ul>")
        if title in pngs:
            b64 = base64.b64encode(pngs[title]).decode()
            parts.append(f"<img alt='plots for {html.escape(title)}' src='data:image/png;base64,{b64}'>")
    sc = score_rows(tables)
    if sc:
        cols = ["dataset", "arch", "method", "ipc", "table", "hlr", "ior", "lrs", "ars"]
        parts.append("<h2>DD-Ranking scores</h2><table><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>")
        for r in sc:
            cells = [str(r[c]) if c not in ("hlr", "ior", "lrs", "ars") else fmt_score(r[c]) for c in cols]
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    parts.append(f"<p>{FULL_MARK} touches the full training set. n = sets × trainings; TTA includes condense "
                 "seconds (teachers at their recorded cost; in brackets without them); n.r. = not reached; a speedup "
                 "is shown only on matching checkpoint grids.</p>")
    if failed:
        parts.append("<h2>Failed cells</h2><ul>")
        for r in failed:
            parts.append(f"<li>{html.escape(str(r['dataset']))} {html.escape(str(r['method']))} ipc={r['ipc']} "
                         f"seed={r['seed']}: {html.escape(str(r.get('error', '?')))}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build(dirs, out: Path | None, with_plots: bool = True, clock: str = "wall", all_versions: bool = False) -> str:
    """Write the three leaderboard files into ``out`` (None: write nothing); returns the markdown."""
    ok, failed = load_records(dirs)
    tables = aggregate(ok, clock, all_versions)
    md = markdown(tables, failed, clock)
    if out is None:
        return md
    out = Path(out)
    atomic_write(out / "leaderboard.md", data=md.encode())
    buf = io.StringIO()
    write_csv(tables, buf)
    atomic_write(out / "leaderboard.csv", data=buf.getvalue().encode())
    pngs = plots(tables, clock) if with_plots and tables else {}
    for old in out.glob("plot-*.png"):
        old.unlink()
    for i, png in enumerate(pngs.values()):
        atomic_write(out / f"plot-{i}.png", data=png)
    atomic_write(out / "leaderboard.html", data=html_page(tables, failed, pngs).encode())
    return md


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.leaderboard", description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="run folders (or results.jsonl files)")
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: the first folder)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="time-to-accuracy on wall-clock seconds or on process CPU seconds (robust on a "
                         "shared machine for single-threaded runs)")
    ap.add_argument("--all-versions", action="store_true",
                    help="also show records from older code, as separate rows labelled with their code identity")
    args = ap.parse_args(argv)
    out = args.out or (args.dirs[0] if args.dirs[0].is_dir() else args.dirs[0].parent)
    try:
        md = build(args.dirs, out, with_plots=not args.no_plots, clock=args.clock, all_versions=args.all_versions)
    except DuplicateRecords as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        note(f"leaderboard files not written to {out} ({e.strerror or e}); printed only")
        md = build(args.dirs, None, clock=args.clock, all_versions=args.all_versions)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
