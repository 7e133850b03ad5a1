"""Records: read from run folders, put in today's terms, and keyed into cells and tables.

Nothing here imports torch or a condenser: a leaderboard builds on a machine that only has the
records. A record carries its method's traits (role, label pipeline, byte matching) as the runner
read them from the condenser class; records written before traits were recorded get the traits
their built-in methods had then (:data:`LEGACY_TRAITS`).
"""
from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from pathlib import Path

from condense._log import note
from condense.identity import code_identity, identity_key, newest_identity
from condense.structure import STRUCTURE_BASELINES

from condense import jsonl

#: the traits of built-in methods, for records written before records carried them
LEGACY_TRAITS = {"random": {"role": "baseline", "labels": "hard"},
                 "random-kd": {"role": "baseline", "labels": "soft"},
                 "full": {"role": "reference", "labels": "hard"},
                 "mirage": {"byte_matched": True}}
DEFAULT_TRAITS = {"role": "method", "labels": "hard", "byte_matched": False}
NAME_MAX = 80   # a method name longer than this is cut in tables, notes and plots (the page keeps it whole)


def cut(name: str, limit: int = NAME_MAX) -> str:
    """``name`` shortened to ``limit`` characters with an ellipsis (the full name stays in the records)."""
    return name if len(name) <= limit else name[:limit - 1] + "…"


#: :func:`current_identity` when the condensers cannot be imported here: no row is labelled older
UNCHECKED = "unchecked"


def is_baseline(row: dict, labels: str | None = None) -> bool:
    """A trivial baseline row (``random``, ``random-kd``), of the ``labels`` pipeline if given."""
    t = row["traits"]
    return t["role"] == "baseline" and (labels is None or t["labels"] == labels)


def is_reference(row: dict) -> bool:
    """The whole-training-set reference row (``full``): speedups and HLR are measured against it."""
    return row["traits"]["role"] == "reference"


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
        if not path.exists() and not path.is_symlink():
            raise SystemExit(f"error: no results.jsonl in {d}")
        try:
            jsonl.check_regular(path)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None
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


def load_structure(dirs) -> list[dict]:
    """The structure-only reference rows (``structure.jsonl``) of run folders, the last of each key;
    a line without a dataset, a known baseline name or a finite accuracy is skipped with a note."""
    out: dict[str, dict] = {}
    for d in dirs:
        path = Path(d) / "structure.jsonl"
        if not Path(d).is_dir() or (not path.exists() and not path.is_symlink()):
            continue
        try:
            jsonl.check_regular(path)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None
        skipped = 0
        for _, rec in jsonl.read_numbered(path):
            if rec is None or not _structure_ok(rec):
                skipped += 1
                continue
            out[rec["key"]] = rec
        if skipped:
            note(f"skipped {skipped} unusable line(s) in {path}")
    return list(out.values())


def _structure_ok(r: dict) -> bool:
    def finite(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return (r.get("kind") == "structure" and isinstance(r.get("dataset"), str) and r.get("method") in STRUCTURE_BASELINES
            and isinstance(r.get("source_fingerprint"), str) and finite(r.get("acc"))
            and (r.get("roc_auc") is None or finite(r["roc_auc"])))


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
    r["traits"] = {**DEFAULT_TRAITS, **LEGACY_TRAITS.get(r["method"], {}), **(r.get("method_traits") or {})}
    return r


def canon(obj) -> str:
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
            "curve": curve or UNRECORDED, "tf32": UNRECORDED if tf32 is None else bool(tf32),
            "preprocessing": r.get("preprocessing") or "the suite's"}


CONTEXT_FIELDS = ("device", "source", "curve", "tf32", "preprocessing")


def table_key(r: dict) -> tuple:
    """What a table's rows share: dataset, architecture, the protocol in full, stopped early, compiled,
    stacked seeds, then :func:`measured_on` (device kind, source fingerprint, curve method, TF32, and the
    input preprocessing of an imported set: ZCA or another codebase's Normalize constants)."""
    ctx = measured_on(r)
    return (r["dataset"], r["arch"], canon(r["protocol"]), bool(r.get("stop_at_targets") or
                                                              (r.get("run_extra") or {}).get("stopped_early")),
            bool(r.get("compile")), int(r.get("together") or 1), *(str(ctx[f]) for f in CONTEXT_FIELDS))


def cell_key(r: dict) -> tuple:
    return (*table_key(r), r["method"], r["ipc"], canon(r.get("method_config", {})))


def newest_only(records: list[dict]) -> tuple[list[dict], int]:
    """Per cell, the records of the newest code identity (:func:`condense.identity.newest_identity`);
    returns them and how many older records were set aside."""
    by_cell: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        by_cell[cell_key(r)].append(r)
    keep = [r for rs in by_cell.values() for r in newest_identity(rs)]
    return keep, len(records) - len(keep)


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



@functools.lru_cache(maxsize=None)
def current_identity(method: str) -> str | None:
    """The code identity a record of ``method`` would carry if it were made now; None when the method
    is unknown, or when its condenser cannot be imported here (no torch: nothing is labelled older)."""
    try:
        # Imported on use: the registry loads every condenser (torch); records alone need none of it.
        from condense.methods import condenser_module
    except ImportError:
        return UNCHECKED
    try:   # a release's row (imported:KIND:NAME) is registered only by the sweep that imported it
        module = "condense.methods.imported" if str(method).startswith("imported:") else condenser_module(method)
        return identity_key(code_identity(module))
    except ValueError:
        return None
