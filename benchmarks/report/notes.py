"""What each table compares, said under its heading, and the notes a newcomer needs to read a row that
looks broken: a soft-label method under hard labels (its hard-label recovery), a soft-label method below
random-kd under its own protocol, a graph row below chance.
"""
from __future__ import annotations

from collections.abc import Callable

MIRAGE_PROBE = "results/graph-mirage/probe_mutag.txt"


def _dc(p: dict) -> str:
    return ("Hard labels: every set trains a student on its images with one-hot labels (DC's protocol). A "
            "soft-label method's row here is its hard-label recovery (HLR), not its own protocol's result.")


def _kd(p: dict) -> str:
    return (f"Static soft labels, as INFER validates: each set's stored soft labels distilled at T = "
            f"{p.get('temperature', '?')} with mixup. random-kd (random real images labelled by the same "
            f"teacher) is the soft-label random baseline.")


def _fkd(p: dict) -> str:
    return ("Replayed soft labels (FKD), as CV-DD and SRe2L++ validate: the views and teacher logits each set "
            "stores per epoch. random-kd (random real images, the same teacher's labels) is the soft-label "
            "random baseline; random trains its hard labels under the same CutMix.")


def _rs2(p: dict) -> str:
    return ("RS2's recipe: a fresh random subset of the training split every round, against static subsets "
            "trained by the same recipe.")


def _graph(p: dict) -> str:
    return ("Graph classification: GNN students trained on each set of graphs (Mirage's tree summaries, random "
            "real graphs, the whole split), the checkpoint selected on the validation split.")


def _mirage_official(p: dict) -> str:
    return "The official Mirage training and report, to reproduce the paper's figures."


COMPARES: dict[str, Callable[[dict], str]] = {"dc": _dc, "kd": _kd, "fkd": _fkd, "rs2": _rs2, "rs2-ratio": _rs2,
                                              "graph": _graph, "mirage-official": _mirage_official}


def compares(p: dict) -> str:
    """One sentence: what the rows of a table under protocol ``p`` compare ("" for an unknown protocol)."""
    say = COMPARES.get(p.get("name"))
    return say(p) if say else ""


def _means(rows: list[dict], method: str) -> dict:
    """IPC -> mean accuracy of ``method``'s rows (a table's baseline per budget)."""
    return {a["ipc"]: a["mean"] for a in rows if a["method"] == method and a.get("mean") is not None}


def row_notes(t: dict) -> list[str]:
    """Notes for rows that need one to be read right."""
    p = t["protocol_dict"]
    rows = t["rows"]
    notes = []
    if p.get("loss", "ce") == "ce":   # graph rows carry no soft labels, so only image rows can match
        random = _means(rows, "random")
        for a in rows:
            base = random.get(a["ipc"])
            if a.get("soft_labels") and a.get("mean") is not None and base is not None and a["mean"] < base:
                notes.append(f"{a['method']} at IPC {a['ipc']} ({a['mean']:.2f} % against random's {base:.2f} %): its "
                             f"images are made for soft labels and train here on hard labels only, so the row is "
                             f"its hard-label recovery (HLR); its soft-label tables (kd, fkd) show its result.")
    else:   # a soft-label protocol: each condenser against random real images labelled by the same pipeline
        base = _means(rows, "random-kd")
        for a in rows:
            ref = base.get(a["ipc"])
            if a["method"] not in ("random-kd", "random", "full") and a.get("mean") is not None and ref is not None \
                    and a["mean"] < ref:
                notes.append(f"{a['method']} at IPC {a['ipc']} ({a['mean']:.2f} % against random-kd's {ref:.2f} %): "
                             f"below random real images under the same soft labels at this budget (its teachers, "
                             f"iterations and student steps); the gap to random-kd, not the raw accuracy, is what "
                             f"the method adds (DD-Ranking's IOR).")
    for a in rows:
        auc = a.get("roc_auc")
        if auc is not None and auc < 50.0:
            why = (f"; {MIRAGE_PROBE} probes why (its trees do not separate the classes, and the students' "
                   f"scores fall with graph size)" if a["method"] == "mirage" else "")
            notes.append(f"{a['method']} at IPC {a['ipc']}: test ROC-AUC {auc:.1f} is below chance (50){why}.")
    return notes


def annotate(tables: dict) -> None:
    """Set each table's ``compares`` sentence and add its row notes (in place)."""
    for t in tables.values():
        t["compares"] = compares(t["protocol_dict"])
        t["notes"].extend(row_notes(t))
