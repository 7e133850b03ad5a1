"""Tables: records grouped so that nothing that differs averages together, with their statistics,
time-to-accuracy, speedups, byte matches and DD-Ranking scores.

Time-to-accuracy is the one the evaluator stored in each record (``tta``, ``tta_no_teacher``, and
their CPU-clock twins); a record without it (older code) gets it from its stored curve through the
same function, :func:`condense.tta.time_to_accuracy`. Nothing here imports torch.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict

from scipy import stats

from condense.references import paper_aggregate
from condense.structure import STRUCTURE_BASELINES
from condense.tta import condense_offset, time_to_accuracy

from . import notes, published, scores
from .layout import add_ranks
from .records import (CONTEXT_FIELDS, UNCHECKED, canon, cut, check_duplicates, current_identity, is_baseline, is_reference,
                      measured_on, newest_only, normalise, table_key)


def protocol_label(p: dict) -> str:
    aug = p.get("augment") or "no aug"
    freq = ", frequencies once per epoch" if p.get("frequency_mode") == "once" else ""
    budget = "" if p.get("budget", "epochs") == "steps" else " · epoch budget (each set its own epochs)"
    prec = f", {p['precision']}" if p.get("precision", "fp32") != "fp32" else ""
    return f"{p['name']} v{p['version']} ({p['preset']}, {p['epochs']} epochs, {aug}{freq}{prec}){budget}"


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def part_bytes(rec) -> int | None:
    """A part's memory figure (``condense.memory``): its CUDA peak on a GPU, else the resident memory it
    added at its peak; None when it was not measured."""
    if not isinstance(rec, dict):
        return None
    v = rec.get("cuda_peak_bytes", rec.get("rss_growth_bytes"))
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None


def _max(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def _all_or_none(xs):
    """The mean when every record has the value, else None (unmeasured: never a partial mean)."""
    xs = list(xs)
    return statistics.fmean(xs) if xs and all(x is not None for x in xs) else None


def ci95(xs: list[float]) -> float | None:
    """Half-width of the 95 % confidence interval of the mean (Student t, sample std)."""
    if len(xs) < 2:
        return None

    return float(stats.t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs)))


def condense_seconds(r: dict, clock: str, teacher: bool = True) -> float | None:
    """A record's condense seconds on ``clock``; None when that clock was not measured. Without
    ``teacher``, the teacher pool's cost on the same clock is taken out."""
    if clock == "cpu":
        c = r.get("condense_cpu_seconds", (r.get("set_extra") or {}).get("condense_cpu_seconds"))
        t = r.get("teacher_cpu_seconds", (r.get("set_extra") or {}).get("teacher_cpu_seconds",
                                                                           0.0 if not r.get("teacher_seconds") else None))
    else:
        c, t = r.get("condense_seconds"), r.get("teacher_seconds") or 0.0
    return condense_offset(c, t, teacher)


#: where the evaluator stored each TTA in a record, by (clock, with teacher time)
STORED_TTA = {("wall", True): "tta", ("wall", False): "tta_no_teacher", ("cpu", True): "tta_cpu",
              ("cpu", False): "tta_cpu_no_teacher"}


def record_tta(r: dict, target: float, clock: str, teacher: bool = True) -> float | None:
    """Time-to-accuracy of one record: the one the evaluator stored. A record that does not carry all
    four (older code) gets every one from the same function over its stored curve, so no row mixes
    the two sources: condense seconds on the same clock + train seconds at the first full-test
    checkpoint at or above ``target``."""
    if all(isinstance(r.get(f), dict) and f"{target:g}" in r[f] for f in STORED_TTA.values()):
        return r[STORED_TTA[(clock, teacher)]][f"{target:g}"]  # one source for every column of the row
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


def aggregate(records: list[dict], clock: str = "wall", all_versions: bool = False,
              structure: list[dict] = ()) -> dict:
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
        grouped[table_key(r)][(r["method"], r["ipc"], canon(r.get("method_config", {})), ident)].append(r)
    tables = {}
    for tkey, rows in grouped.items():
        agg = [_row(rs, clock) for rs in rows.values()]
        _label_rows(agg, all_versions)
        agg.sort(key=lambda a: (a["ipc"] if a["ipc"] else 10 ** 9, a["method"], a["method_label"]))
        add_ranks(agg)
        p = next(iter(rows.values()))[0]["protocol"]
        tables[tkey] = {"rows": agg, "protocol_dict": p, "heading": "", "notes": [], "hidden": 0}
    _headings(tables)
    add_speedups(tables)
    add_byte_matches(tables)
    add_structure(tables, structure)
    scores.compute(tables)
    published.annotate(tables)
    notes.annotate(tables)
    if any(current_identity(a["method"]) == UNCHECKED for t in tables.values() for a in t["rows"]):
        first = next(iter(tables.values()))
        first["notes"].append("Rows are not checked against today's code: its condensers cannot be imported here")
    if hidden:
        first = next(iter(tables.values()), None)
        if first is not None:
            first["notes"].append(f"{hidden} record(s) from older code are not shown (--all-versions shows them)")
    return dict(sorted(tables.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[1]["heading"])))


TEST_SELECTED_PROTOCOLS = ("fkd",)   # CV-DD's train_fkd.py tests every 10 epochs and reports the best


def test_selected(rs: list[dict]) -> dict | None:
    """CV-DD's own report (``validate/train_fkd.py``): each run's best test accuracy over its checkpoints
    on the full test set, a selection on the test set, shown apart and never as the row's accuracy. None
    for other protocols or runs without full-test checkpoints."""
    if rs[0]["protocol"].get("name") not in TEST_SELECTED_PROTOCOLS:
        return None
    best, epochs = [], set()
    for r in rs:
        pts = [c for c in r.get("curve") or [] if c.get("on", "full") == "full" and c.get("acc") is not None]
        if not pts:
            return None
        best.append(max(c["acc"] for c in pts))
        epochs |= {c.get("epoch") for c in pts}
    ep = sorted(e + 1 for e in epochs if e is not None)
    every = ep[1] - ep[0] if len(ep) > 1 else None
    return {"mean": statistics.fmean(best), "std": statistics.pstdev(best) if len(best) > 1 else 0.0,
            "points": len(ep), "every_epochs": every}


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
        "config_key": canon(first.get("method_config", {})), "identity": first["identity"],
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
        "released": any(r.get("released") for r in rs),
        "condense_memory": _all_or_none(part_bytes((r.get("set_extra") or {}).get("condense_memory")) for r in rs),
        "teacher_memory": _max(part_bytes(t.get("memory")) for r in rs
                               for t in ((r.get("set_extra") or {}).get("teachers") or []) if isinstance(t, dict)),
        "train_memory": _max(part_bytes((r.get("run_extra") or {}).get("train_memory")) for r in rs),
        "soft_labels": bool(parts.get("soft_labels")),
        "roc_auc": _mean((r.get("run_extra") or {}).get("roc_auc") for r in rs),
        "aucs": [(r.get("run_extra") or {}).get("roc_auc") for r in rs],
        "roc_auc_std": _pstdev((r.get("run_extra") or {}).get("roc_auc") for r in rs),
        "paper": paper_aggregate(rs), "test_selected": test_selected(rs),
        "curves": [(condense_seconds(r, clock) or 0.0,
                    [(c[time_key], c["acc"], c.get("on", "full") == "full") for c in r.get("curve", []) if time_key in c])
                   for r in rs],
        "source": first.get("source", ""), "measured": measured_on(first), "traits": first["traits"],
        "records": rs,   # the page's provenance (command, machine, deviations, set files)
    }


def _label_rows(rows: list[dict], all_versions: bool) -> None:
    """Rows of one method and IPC that differ in config say how; older code says so too."""
    by = defaultdict(list)
    for a in rows:
        by[(a["method"], a["ipc"])].append(a)
    for same in by.values():
        if len({a["config_key"] for a in same}) > 1:
            keys = sorted({k for a in same for k in a["config"]})
            varying = [k for k in keys if len({canon(a["config"].get(k)) for a in same}) > 1]
            for a in same:
                a["method_label"] += " [" + ", ".join(f"{k}={a['config'].get(k)}" for k in varying) + "]"
    for a in rows:  # the whole split trained to its protocol's own budget, beside the table's
        if is_reference(a) and not a["ipc"] and a["budget"] == "steps":
            a["method_label"] += " (its protocol's own budget)"
    for a in rows:  # rows not from today's code say so (all of them with --all-versions)
        current = current_identity(a["method"])
        if all_versions or (current != UNCHECKED and a["identity"] != current):
            a["method_label"] += f" ⟨{a['identity'] if a['identity'] == 'no identity' else 'code ' + a['identity']}⟩"


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
                   len({canon(tables[k]["protocol_dict"].get(f)) for k in keys}) > 1]
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
            pre = t["rows"][0]["measured"]["preprocessing"]
            if pre != "the suite's" and not any(a["traits"].get("role") == "baseline" for a in t["rows"]):
                t["notes"].append(f"Released sets whose inputs differ from the suite's ({pre}): the trivial "
                                  "baselines (random real images) are in the table of the same protocol with the "
                                  "suite's inputs; the two tables are not one comparison")


def _context_label(field: str, value: str, table: dict) -> str:
    """How a heading names a :func:`measured_on` field that differs from a neighbouring table's."""
    if field == "device":
        return f"measured on {value}"
    if field == "source":
        src = table["rows"][0].get("source") or ""
        return f"source {value[:12]}" + (f" ({src})" if src else "")
    if field == "curve":
        return {"full": "exhaustive curve", "screened": "screened curve"}.get(value, f"curve {value}")
    if field == "preprocessing":
        return f"inputs: {value}" if value != "the suite's" else "inputs: the suite's Normalize"
    return {"True": "TF32 allowed", "False": "no TF32"}.get(value, f"TF32 {value}")


def _pstdev(xs):
    xs = [x for x in xs if x is not None]
    return statistics.pstdev(xs) if len(xs) > 1 else (0.0 if xs else None)


def add_byte_matches(tables: dict) -> None:
    """For graph summaries (Mirage): the ``random`` row of the same table whose storage bytes are
    closest (in ratio) to the row's, so a reader sees the equal-bytes comparison directly."""
    for t in tables.values():
        rows = t["rows"]
        randoms = [a for a in rows if is_baseline(a, "hard") and a["bytes"]]
        for a in rows:
            if not a["traits"]["byte_matched"] or not randoms or not a["bytes"]:
                continue
            best = min(randoms, key=lambda r: (abs(math.log(r["bytes"] / a["bytes"])), r["ipc"]))
            a["byte_match"] = {"ipc": best["ipc"], "mean": best["mean"], "std": best["std"],
                               "roc_auc": best["roc_auc"], "ratio": best["bytes"] / a["bytes"]}


def add_structure(tables: dict, structure: list[dict]) -> None:
    """The structure-only references of each graph table's dataset and data copy (``t["structure"]``),
    and, on every row, whether it beats ``node-count`` beyond its 95 % CI on the table's headline metric
    (ROC-AUC where both have it, else accuracy): a row whose CI's lower end does not clear node-count
    gets ``below_node_count``."""
    order = {m: i for i, m in enumerate(STRUCTURE_BASELINES)}
    for (dataset, *_), t in tables.items():
        rows = t["rows"]
        refs = sorted((s for s in structure if s["dataset"] == dataset
                       and s["source_fingerprint"] == rows[0]["measured"]["source"]), key=lambda s: order[s["method"]])
        if not refs:
            continue
        t["structure"] = refs
        nc = next((s for s in refs if s["method"] == "node-count"), None)
        if nc is None:
            continue
        for a in rows:
            by_auc = nc.get("roc_auc") is not None and all(v is not None for v in a["aucs"])
            vals = a["aucs"] if by_auc else a["accs"]
            ref = nc["roc_auc"] if by_auc else nc["acc"]
            low = statistics.fmean(vals) - (ci95(vals) or 0.0)
            if low <= ref:
                a["below_node_count"] = {"metric": "ROC-AUC" if by_auc else "accuracy", "node_count": ref}


def add_speedups(tables: dict) -> None:
    """TTA speedup of a row against ``full``: the ``full`` row of its own table at its IPC, else one
    trained by the same recipe elsewhere on the same kind of device and the same source data. A speedup is shown only when both rows put their test
    checkpoints on the same grid of steps; otherwise the cell says why there is none."""
    def ref_key(a):  # a reference elsewhere: the same recipe, measured on the same kind of device and data
        return a["dataset"], a["arch"], a["recipe"], a["measured"]["device"], a["measured"]["source"]

    refs: dict[tuple, list[dict]] = defaultdict(list)
    for t in tables.values():
        for a in t["rows"]:
            if is_reference(a):
                refs[ref_key(a)].append(a)
    for t in tables.values():
        for a in t["rows"]:
            a["speedup"], a["speedup_note"] = {}, None
            if is_reference(a):
                continue
            same = [r for r in t["rows"] if is_reference(r) and r["ipc"] == a["ipc"]]
            cands = same or refs.get(ref_key(a), [])
            if not cands:
                continue
            ref = cands[0]
            if a["checkpoint_every"] is None or ref["checkpoint_every"] is None or \
                    abs(a["checkpoint_every"] - ref["checkpoint_every"]) > 1e-9:
                a["speedup_note"] = (f"{cut(a['method'])} (IPC {a['ipc'] or 'all'}) checks every "
                                     f"{_steps(a['checkpoint_every'])} steps, full every "
                                     f"{_steps(ref['checkpoint_every'])}: no speedup on different grids")
                t.setdefault("off_grid", []).append((f"{cut(a['method'])} (IPC {a['ipc'] or 'all'})",
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
