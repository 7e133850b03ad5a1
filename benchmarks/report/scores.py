"""DD-Ranking scores (Li et al., 2025, "DD-Ranking: Rethinking the Evaluation of Dataset
Distillation"; NUS-HPC-AI-Lab/DD-Ranking), computed from the suite's own rows, accuracies as fractions:

- HLR (hard label recovery) = acc(full, hard labels) − acc(set, hard labels);
- IOR (improvement over random) = acc(set, its labels) − acc(random real images, the same label
  pipeline): ``random-kd`` (the same teachers' soft labels) for soft-label methods, ``random`` for
  hard-label ones;
- LRS (label-robust score) = (e^α − e^−1) / (e − e^−1), α = (IOR − HLR) / 2;
- ARS (augmentation-robust score): the same normalisation over β = ½ Δ(with augmentation) +
  ½ Δ(without), Δ = acc(set) − acc(random) under the set's own label pipeline.

A score only combines rows that share the step budget and everything else that can differ: the
same dataset, source data, device kind and architecture and IPC, the same set (method and resolved
config), the protocol of the label pipeline in full (HLR: a ``dc`` table; IOR and ARS: the set's own
table), a baseline row under the scored row's configuration (the fields both configs have: a
``random-kd`` row with the same teachers, recipe and teacher seed), and for ARS two tables that
differ in the augmentation fields alone. Where no such rows exist, or several baselines match, the
score is "—", with the reason.
"""
from __future__ import annotations

import math

from .records import cut

AUG_FIELDS = ("augment", "mixup_alpha")


def normalised(x: float) -> float:
    """(e^x − e^−1) / (e − e^−1): maps x ∈ [−1, 1] onto [0, 1]."""
    return (math.exp(x) - math.exp(-1)) / (math.e - math.exp(-1))


def lrs(hlr: float, ior: float) -> float:
    return normalised((ior - hlr) / 2)


def ars(delta_aug: float, delta_plain: float) -> float:
    return normalised(0.5 * delta_aug + 0.5 * delta_plain)


def _without(p: dict, fields) -> dict:
    return {k: v for k, v in p.items() if k not in fields}


def _find(rows: list[dict], method: str, ipc: int, config: str | None = None) -> dict | None:
    for a in rows:
        if a["method"] == method and a["ipc"] == ipc and (config is None or a["config_key"] == config):
            return a
    return None


def shared_config(a: dict, b: dict) -> bool:
    """Whether two rows' resolved configs agree on every field both have (a baseline's teachers, recipe,
    teacher seed and soft-label dtype against a soft-label method's: the same soft labels)."""
    ca, cb = a.get("config") or {}, b.get("config") or {}
    return all(ca[k] == cb[k] for k in ca.keys() & cb.keys())


def baseline_names(tables: dict) -> dict[str, str]:
    """The trivial baseline of each label pipeline (``hard``, ``soft``) and the ``full`` reference, named
    by the method traits the records carry (the condenser class's ``role`` and ``labels``)."""
    names = {"hard": "hard-label baseline", "soft": "soft-label baseline", "full": "full"}
    for t in tables.values():
        for a in t["rows"]:
            tr = a["traits"]
            if tr["role"] == "baseline":
                names[tr["labels"]] = a["method"]
            elif tr["role"] == "reference":
                names["full"] = a["method"]
    return names


def baseline_row(rows: list[dict], method: str, a: dict) -> tuple[dict | None, str]:
    """The row of ``method`` at ``a``'s IPC under ``a``'s configuration (:func:`shared_config`), or None
    and why: none at that IPC, none under this configuration, or several that match."""
    at_ipc = [b for b in rows if b["method"] == method and b["ipc"] == a["ipc"]]
    same = [b for b in at_ipc if shared_config(a, b)]
    if len(same) == 1:
        return same[0], ""
    if not at_ipc:
        return None, f"no {cut(method)} row at IPC {a['ipc']}"
    if not same:
        return None, f"no {cut(method)} row at IPC {a['ipc']} under {cut(a['method'])}'s configuration (its teachers)"
    return None, f"{len(same)} {cut(method)} rows at IPC {a['ipc']} match {cut(a['method'])}'s configuration"


def _measured(table: dict) -> tuple:
    """What a score's rows must share besides the protocol (the table's ``measured``,
    :func:`benchmarks.report.records.measured_on`): the device kind, the source data and TF32, not the
    curve method (accuracies are full passes either way)."""
    m = table["rows"][0]["measured"]
    return m["device"], m["source"], m["tf32"]


def _hard_tables(tables: dict, own_key) -> list:
    """``dc`` tables of the same dataset, architecture, budget rule and measurement as the own table."""
    first, budget = tables[own_key]["rows"][0], tables[own_key]["protocol_dict"].get("budget")
    return [k for k, t in tables.items() if t["rows"] and _measured(t) == _measured(tables[own_key])
            and t["rows"][0]["dataset"] == first["dataset"]
            and t["rows"][0]["arch"] == first["arch"] and t["protocol_dict"].get("name") == "dc"
            and t["protocol_dict"].get("loss", "ce") == "ce" and t["protocol_dict"].get("budget") == budget]


def compute(tables: dict) -> list[dict]:
    """Scores for every non-baseline row of a table that is its own label pipeline; attaches
    ``row["scores"]`` and returns one entry per scored row."""
    out, names = [], baseline_names(tables)
    for key, t in tables.items():
        p, rows = t["protocol_dict"], t["rows"]
        label = "soft" if p.get("loss") == "kd" else "hard" if p.get("name") == "dc" else None
        if label is None:
            continue
        for a in rows:
            if a["traits"]["role"] != "method" or (label == "soft") != a.get("soft_labels", False):
                continue
            s = {"hlr": None, "ior": None, "lrs": None, "ars": None, "notes": []}
            base, why = baseline_row(rows, names[label], a)
            if base is not None:
                s["ior"] = (a["mean"] - base["mean"]) / 100
            else:
                s["notes"].append(f"IOR: {why} in this table")
            hard_keys = [key] if label == "hard" else _hard_tables(tables, key)
            pairs = []
            for hk in hard_keys:
                hr = tables[hk]["rows"]
                m, full = _find(hr, a["method"], a["ipc"], a["config_key"]), baseline_row(hr, names["full"], a)[0]
                if m is not None and full is not None:
                    pairs.append((hk, m, full))
            if len(pairs) > 1:  # several hard-label tables: the one whose augmentation matches the own table's
                same = [x for x in pairs if (tables[x[0]]["protocol_dict"].get("augment") is None)
                        == (p.get("augment") is None)]
                pairs = same if len(same) == 1 else pairs
            if len(pairs) == 1:
                _, m, full = pairs[0]
                s["hlr"] = (full["mean"] - m["mean"]) / 100
            else:
                s["notes"].append("HLR: " + ("several dc tables could serve; none matches uniquely" if pairs else
                                            f"no dc table with both {cut(a['method'])} (this config) and full at "
                                            f"IPC {a['ipc']} under the same budget"))
            if s["hlr"] is not None and s["ior"] is not None:
                s["lrs"] = lrs(s["hlr"], s["ior"])
            flip = [k for k, tt in tables.items() if k != key and tt["rows"] and _measured(tt) == _measured(t)
                    and tt["rows"][0]["dataset"] == a["dataset"] and tt["rows"][0]["arch"] == a["arch"]
                    and _without(tt["protocol_dict"], AUG_FIELDS) == _without(p, AUG_FIELDS)
                    and (tt["protocol_dict"].get("augment") is None) != (p.get("augment") is None)]
            deltas = {}
            for k in [key] + flip[:1]:
                tr = tables[k]["rows"]
                m, r = _find(tr, a["method"], a["ipc"], a["config_key"]), baseline_row(tr, names[label], a)[0]
                if m is not None and r is not None:
                    deltas["plain" if tables[k]["protocol_dict"].get("augment") is None else "aug"] = \
                        (m["mean"] - r["mean"]) / 100
            if len(deltas) == 2:
                s["ars"] = ars(deltas["aug"], deltas["plain"])
                s["delta_aug"], s["delta_plain"] = deltas["aug"], deltas["plain"]
            elif p.get("augment") == "fkd":
                s["notes"].append("ARS: fkd trains replayed augmented views and has no augmentation-off twin")
            else:
                s["notes"].append("ARS: needs this table and one that differs only in augmentation, each with "
                                  f"{cut(a['method'])} and {names[label]} at IPC {a['ipc']}")
            a["scores"] = s
            out.append({"dataset": a["dataset"], "arch": a["arch"], "method": a["method"], "ipc": a["ipc"],
                        "table": t["heading"], "label_pipeline": label, **s})
    return out
