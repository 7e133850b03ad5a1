"""The leaderboard's "published" column: each row beside the published figure for its cell
(``condense/references.toml``), in band, out of band, or why it is not compared (DESIGN §7)."""
from __future__ import annotations

from condense.references import cell_verdict, load_published


def values(a: dict, ref) -> list[float] | None:
    """A table row's per-run figures in the reference's metric (accuracy, ROC-AUC, Mirage's report)."""
    if ref.aggregate == "paper-top5-of-10":
        return (a.get("paper") or {}).get("aucs")
    if ref.metric == "roc-auc":
        aucs = a.get("aucs") or []
        return None if not aucs or any(v is None for v in aucs) else aucs
    return a["accs"]


def annotate(tables: dict, refs=None) -> None:
    """Set ``row["published"]`` (a :class:`condense.references.Verdict`) on each row with a reference."""
    refs = load_published() if refs is None else refs
    for t in tables.values():
        for a in t["rows"]:
            if a.get("stopped_early"):
                continue
            v = cell_verdict(refs, (a["method"], a["dataset"], a["ipc"], a["arch"]), a.get("config"),
                             t["protocol_dict"], lambda r: values(a, r), "JPEG" in str(a.get("source", "")))
            if v is not None:
                a["published"] = v
