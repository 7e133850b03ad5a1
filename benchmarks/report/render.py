"""Rendering: a table set as Markdown and CSV (the page: :mod:`.page`).

Every string that comes from a record is escaped for the format it lands in.
"""
from __future__ import annotations

import csv

from condense.references import PAPER_KEPT, PAPER_RUNS

from . import crossarch
from .cells import csv_cell, fmt_bytes, fmt_tta, match_cell, md  # noqa: F401  (fmt_tta: read from here)
from .layout import BELOW_MARK, FULL_MARK, best_marks, columns
from .records import NAME_MAX, canon, cut  # noqa: F401  (NAME_MAX: read from here)

BELOW_LEGEND = (f"{BELOW_MARK}: the row does not beat `node-count` (the number of nodes, no model, no set) beyond its "
                "95 % CI on the table's headline metric (ROC-AUC on two classes, else accuracy).")
PUBLISHED_LEGEND = ("published (band): the figure `condense/references.toml` gives for the row's method, dataset, IPC "
                    "and architecture (paper, table, arXiv id: `python -m condense verify --results DIR`). In band when "
                    "|Δ| ≤ 2·√(s_pub² + s_row²), or the paper's own tolerance; \"protocol differs\" rows are not "
                    "compared, and the reason is shown.")


def md_tables(rows: list[dict]) -> list[str]:
    """A table's rows as two Markdown tables: the compact columns (the best value of each column in bold),
    then the long columns keyed by IPC and method."""
    cols = columns(rows)
    best = best_marks(rows, cols)

    def cell(c, i, a):
        text = md(c.text(a))
        return f"**{text}**" if i in best.get(c.id, ()) else text

    out = []
    for part in ([c for c in cols if c.compact], [c for c in cols if c.id in ("ipc", "method") or not c.compact]):
        out += ["| " + " | ".join(c.title for c in part) + " |", "|" + "|".join("---" for _ in part) + "|"]
        out += ["| " + " | ".join(cell(c, i, a) for c in part) + " |" for i, a in enumerate(rows)]
        out.append("")
    return out


def dataset_label(dataset: str, source: str) -> str:
    """The dataset's name, marked when the data is the lossy JPEG copy (results must say so)."""
    return f"{dataset} (JPEG copy)" if "JPEG" in (source or "") else dataset


def fmt_score(x) -> str:
    return "—" if x is None else f"{x:+.4f}" if abs(x) < 1 else f"{x:.4f}"


def score_rows(tables: dict) -> list[dict]:
    return [{**a["scores"], "dataset": a["dataset"], "arch": a["arch"], "method": a["method_label"], "ipc": a["ipc"],
             "table": t["heading"]} for t in tables.values() for a in t["rows"] if a.get("scores")]


def test_selected_table(rows: list[dict]) -> list[str]:
    """CV-DD's report (best test checkpoint per run) beside the final accuracy, labelled as selected on test."""
    have = [a for a in rows if a.get("test_selected")]
    if not have:
        return []
    every = {a["test_selected"]["every_epochs"] for a in have}
    spacing = (f"every {every.pop()} epochs" if len(every) == 1 and None not in every else "at its checkpoints")
    out = ["Paper aggregation (CV-DD's `train_fkd.py`): each run's best test accuracy over its full-test "
           f"checkpoints ({spacing}; the official code tests every 10 epochs). **Selected on the test set**: "
           "it reads higher than the final accuracy above, which stays the default.", "",
           "| IPC | method | final acc % (default) | best test checkpoint % (selected on test) | checkpoints |",
           "|---|---|---|---|---|"]
    for a in have:
        t = a["test_selected"]
        out.append(f"| {a['ipc']} | {md(cut(a['method_label']))} | {a['mean']:.2f} ± {a['std']:.2f} | "
                   f"{t['mean']:.2f} ± {t['std']:.2f} | {t['points']} |")
    return out + [""]


def paper_table(rows: list[dict]) -> list[str]:
    """The rows that have a ``paper`` aggregation, as a labelled table of its own (markdown lines)."""
    have = [a for a in rows if a.get("paper")]
    if not have:
        return test_selected_table(rows)
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
        out.append(f"| {a['ipc']} | {md(cut(a['method_label']))} | {fmt_bytes(a['bytes'])} | {p['auc']:.1f} ± {p['auc_std']:.1f} "
                   f"| {p['acc']:.2f} ± {p['acc_std']:.2f} | {p['val_auc']:.1f} | {kept} |")
    out.append("")
    steps: dict[tuple, list[dict]] = {}
    for a in have:   # the official scripts' last step: of their support settings, the best by validation
        steps.setdefault((a["method"], a["ipc"]), []).append(a)
    for (method, ipc), same in steps.items():
        if len(same) > 1:
            best = max(same, key=lambda a: a["paper"]["val_auc"])
            out += [f"Of the {len(same)} {md(cut(method))} settings at IPC {ipc}, the official report takes "
                    f"{md(cut(best['method_label']))} (the best validation ROC-AUC of its kept runs, "
                    f"{best['paper']['val_auc']:.1f}): test ROC-AUC {best['paper']['auc']:.1f} ± "
                    f"{best['paper']['auc_std']:.1f}.", ""]
    return out


STRUCTURE_COLUMNS = ["reference (fitted on the training split)", "acc %", "ROC-AUC %", "train acc %", "storage"]


def structure_cells(t: dict) -> list[list[str]]:
    """A table's structure-only reference rows (:mod:`condense.structure`), as cells."""
    return [[str(s["method"]), f"{s['acc']:.2f}", "—" if s.get("roc_auc") is None else f"{s['roc_auc']:.1f}",
             "—" if not isinstance(s.get("train_acc"), (int, float)) else f"{s['train_acc']:.1f}", "0 B (no set)"]
            for s in t.get("structure", [])]


def structure_table(t: dict) -> list[str]:
    rows = structure_cells(t)
    if not rows:
        return []
    out = ["Structure only, no model and no set (Errica et al., ICLR 2020): `node-count` scores a graph by its "
           "number of nodes; `size` and `bag-of-atoms` are logistic regressions on node and edge counts and on "
           "summed node features.", "", "| " + " | ".join(STRUCTURE_COLUMNS) + " |",
           "|" + "|".join("---" for _ in STRUCTURE_COLUMNS) + "|"]
    return out + ["| " + " | ".join(md(c) for c in r) + " |" for r in rows] + [""]


def markdown(tables: dict, failed: list[dict], clock: str = "wall") -> str:
    lines = ["# Leaderboard", ""]
    if clock == "cpu":
        lines += ["Time-to-accuracy, condense, teacher and train seconds on the process CPU-time clock (single-"
                  "threaded runs); a record that did not measure a part on this clock shows \"—\".", ""]
    for (dataset, arch, *_), t in tables.items():
        rows = t["rows"]
        src = rows[0]["source"]
        lines += [f"## {md(dataset_label(dataset, src))} · {md(arch)} · {md(t['heading'])}", ""]
        if t.get("compares"):
            lines += [md(t["compares"]), ""]
        if src:
            lines += [f"Source: {md(src)}." + (" Results on this lossy JPEG copy of the dataset are not results on "
                                            "the original." if "JPEG" in src else ""), ""]
        if any(a["legacy"] for a in rows):
            lines += ["Some rows come from records made before the step budget, separate training seeds and code "
                      "identity were recorded (legacy): they trained under the epoch rule and stand apart from "
                      "equal-step tables.", ""]
        lines += md_tables(rows)
        lines += structure_table(t)
        lines += paper_table(rows)
        for n in dict.fromkeys(t["notes"]):
            lines.append(f"- {md(n)}")
        if t["notes"]:
            lines.append("")
    lines += crossarch.markdown_lines(tables, md)
    sc = score_rows(tables)
    if sc:
        lines += ["## DD-Ranking scores", "",
                  "Accuracies as fractions, from rows of the tables above at the same budget: HLR = acc(full, hard) "
                  "− acc(set, hard); IOR = acc(set) − acc(random real images, same label pipeline); LRS = "
                  "(e^α − e^−1)/(e − e^−1), α = (IOR − HLR)/2; ARS: the same over β = ½Δ(with aug) + ½Δ(without).",
                  "", "| dataset | arch | method | IPC | own table | HLR | IOR | LRS | ARS | missing |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for s in sc:
            lines.append(f"| {md(s['dataset'])} | {md(s['arch'])} | {md(cut(s['method']))} | {md(s['ipc'])} | "
                         f"{md(s['table'])} | {fmt_score(s['hlr'])} | {fmt_score(s['ior'])} | {fmt_score(s['lrs'])} | "
                         f"{fmt_score(s['ars'])} | {md('; '.join(s['notes']) or '—')} |")
        lines.append("")
    lines += ["Each table's first part holds the compact columns, the second the long ones of the same rows. Rank: 1 + "
              "the rows of the same IPC whose 95 % interval lies wholly above the row's (\"2=\": tied). Bold: the best "
              "value of its column (the whole-split reference apart; none where every row ties).", ""]
    lines += [f"{FULL_MARK} touches the full training set; \"training reads\" counts what a run reads (the whole "
              "split for these, the stored parts otherwise). n = sets × trainings per set; the 95 % CI is the "
              "half-width of the interval of the mean (Student t). Steps are optimizer steps (samples seen). TTA = "
              "condense seconds (teachers at their recorded cost) + train seconds to the first checkpoint at or "
              "above the target test accuracy, with the time without teachers in brackets where it differs; "
              "\"n.r. (k/n)\": only k of n runs reached it; (×s): speedup against `full` on the same checkpoint "
              "grid; \"—\": not measured on this clock. Storage counts every stored part (images, labels, soft "
              "labels, compensators, schedules, summaries). Peak memory: what condensation (its teachers, in "
              "brackets) and the largest training run added to resident memory at their peak (on a GPU, CUDA's "
              "peak allocated).", ""]
    if any(a.get("below_node_count") for t in tables.values() for a in t["rows"]):
        lines += [BELOW_LEGEND, ""]
    if any(a.get("published") for t in tables.values() for a in t["rows"]):
        lines += [PUBLISHED_LEGEND, ""]
    if any(a.get("byte_match") for t in tables.values() for a in t["rows"]):
        lines += ["Graph summaries (Mirage) carry no IPC of graphs: their last column is the `random` row of the "
                  "same table whose storage is closest to theirs, with that row's IPC and its bytes relative to "
                  "the summary's. ROC-AUC is mean ± std over the same runs as accuracy.", ""]
    if failed:
        lines += ["## Failed cells", ""]
        for r in sorted(failed, key=lambda r: (r["dataset"], r["method"], r["ipc"], r["seed"])):
            lines.append(f"- {md(r['dataset'])} {md(cut(str(r['method'])))} ipc={md(r['ipc'])} seed={md(r['seed'])} "
                         f"{md(r.get('arch', ''))}: {md(r.get('error', '?'))}")
        lines.append("")
    return "\n".join(lines)


CSV_COLS = ["dataset", "arch", "protocol", "budget", "method", "ipc", "config", "code", "n", "sets", "trainings",
            "seeds", "train_seeds", "mean", "std", "ci95", "accs", "steps", "samples", "checkpoint_every", "tta",
            "tta_no_teacher", "speedup", "condense_seconds", "teacher_seconds", "train_seconds", "bytes",
            "bytes_by_part", "reads_bytes", "touches_full_data", "roc_auc", "roc_auc_std", "bytes_matched_random",
            "hlr", "ior", "lrs", "ars", "source", "paper_roc_auc", "paper_roc_auc_std", "beats_node_count",
            "released", "condense_peak_bytes", "teacher_peak_bytes", "train_peak_bytes", "published_mean",
            "published_std", "published_status", "published_source"]


def write_csv(tables: dict, f) -> None:
    """The table rows as CSV into the text stream ``f``."""
    w = csv.writer(f)
    w.writerow(CSV_COLS)

    def tta(d):
        return ";".join(f"{t}:{v['mean'] if v['mean'] is not None else 'n.r.'}" for t, v in d.items())

    for t in tables.values():
        for a in t["rows"]:
            sc = a.get("scores") or {}
            w.writerow(map(csv_cell, [a["dataset"], a["arch"], t["heading"], a["budget"], cut(a["method"]), a["ipc"],
                        canon(a["config"]), a["identity"], a["n"], a["sets"], a["trainings"],
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
                                       (f"{a['paper']['auc']:.4f}", f"{a['paper']['auc_std']:.4f}")),
                        "" if not t.get("structure") else not a.get("below_node_count"), bool(a.get("released")),
                        *("" if a.get(k) is None else a[k] for k in ("condense_memory", "teacher_memory",
                                                                      "train_memory")), *published_csv(a)]))


def published_csv(a: dict) -> list:
    v = a.get("published")
    if v is None:
        return ["", "", "", ""]
    return [v.ref.mean, v.ref.std, v.status if v.status != "not comparable" else v.why, v.ref.cite()]
