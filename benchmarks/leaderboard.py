"""Leaderboards from one or more runs: ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.html``.

    python -m benchmarks.leaderboard runs/default [runs/other ...] [--out DIR]

One table per dataset (and architecture/protocol). Rows are methods at each IPC; columns give
accuracy mean ± std (n), time-to-accuracy at each target ("n.r." when a seed never reached it),
condense and teacher seconds, train seconds, storage bytes, and a mark for methods that touch the
full training set. The HTML page embeds plots: accuracy against IPC, against wall time, and against
storage bytes.
"""
from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from condense._log import note
from condense._paths import atomic_write
from condense.evaluate import time_to_accuracy

from . import jsonl

FULL_MARK = "†"


def load_records(dirs) -> tuple[list[dict], list[dict]]:
    """(ok records, failed records) merged over run folders; a later folder wins on equal keys.

    A line that does not parse, or a record without the fields a table needs, is skipped with a
    note; the file itself is never changed."""
    merged: dict[str, dict] = {}
    for d in dirs:
        d = Path(d)
        path = d / "results.jsonl" if d.is_dir() else d
        if not path.exists():
            raise SystemExit(f"error: no results.jsonl in {d}")
        records, bad = jsonl.read(path)
        skipped = [r for r in records if jsonl.malformed(r)]
        if bad or skipped:
            why = f" ({jsonl.malformed(skipped[0])})" if skipped else ""
            note(f"skipped {bad + len(skipped)} unusable line(s) in {path}{why}")
        for r in records:
            if not jsonl.malformed(r):
                merged[r["key"]] = r
    ok = [r for r in merged.values() if r.get("status") == "ok"]
    failed = [r for r in merged.values() if r.get("status") != "ok"]
    return ok, failed


def protocol_label(p: dict) -> str:
    aug = p.get("augment") or "no aug"
    freq = ", frequencies once per epoch" if p.get("frequency_mode") == "once" else ""
    return f"{p['name']} v{p['version']} ({p['preset']}, {p['epochs']} epochs, {aug}{freq})"


def group_key(r: dict) -> tuple:
    return (r["dataset"], r["arch"], protocol_label(r["protocol"]))


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def condense_seconds(r: dict, clock: str) -> float | None:
    """A record's condense seconds; on the CPU clock, the condenser's CPU time where it was recorded."""
    cpu = (r.get("set_extra") or {}).get("condense_cpu_seconds")
    return cpu if clock == "cpu" and cpu is not None else r.get("condense_seconds")


def record_tta(r: dict, target: float, clock: str) -> float | None:
    """Time-to-accuracy of one record: condense seconds + train seconds at the first crossing.

    The wall clock reads the stored value; the CPU clock is recomputed from the curve, so that the
    condense part is on the CPU clock too."""
    if clock != "cpu":
        return (r.get("tta") or {}).get(f"{target:g}")
    return time_to_accuracy(r.get("curve", []), target, condense_seconds(r, clock) or 0.0, "cpu_seconds")


def aggregate(records: list[dict], clock: str = "wall") -> dict:
    """Rows per (dataset, arch, protocol) table, keyed by (method, ipc).

    ``clock="cpu"`` reads time-to-accuracy on the process CPU-time clock (records that carry it)."""
    time_key = "cpu_seconds" if clock == "cpu" else "train_seconds"
    tables: dict[tuple, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        tables[group_key(r)][(r["method"], r["ipc"])].append(r)
    out: dict[tuple, list[dict]] = {}
    for tkey, rows in tables.items():
        agg = []
        for (method, ipc), rs in rows.items():
            rs = sorted(rs, key=lambda r: r["seed"])
            accs = [r["acc"] for r in rs]
            targets = rs[0].get("targets", [])
            tta = {}
            # records whose curve lacks this clock (made before it was recorded) are unmeasured, not "not reached"
            unmeasured = sum(1 for r in rs if any(time_key not in c for c in r.get("curve", [])))
            for t in targets:
                vals = [record_tta(r, t, clock) for r in rs]
                reached = [v for v in vals if v is not None]
                tta[f"{t:g}"] = {"mean": statistics.fmean(reached) if len(reached) == len(vals) else None,
                                 "reached": len(reached), "n": len(vals), "unmeasured": unmeasured}
            agg.append({
                "dataset": tkey[0], "arch": tkey[1], "protocol": tkey[2], "method": method, "ipc": ipc,
                "recipe": (rs[0]["protocol"]["name"], rs[0]["protocol"]["preset"]),
                "n": len(rs), "seeds": [r["seed"] for r in rs], "accs": accs,
                "mean": statistics.fmean(accs), "std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
                "stopped_early": any((r.get("run_extra") or {}).get("stopped_early") for r in rs),
                "tta": tta, "targets": targets,
                "condense_seconds": _mean(condense_seconds(r, clock) for r in rs),
                "teacher_seconds": _mean(r.get("teacher_seconds") for r in rs),
                "train_seconds": _mean(r.get("cpu_seconds" if clock == "cpu" else "train_seconds") for r in rs),
                "bytes": _mean(r.get("storage_bytes", {}).get("total") for r in rs),
                "parts": {k: _mean(r.get("storage_bytes", {}).get(k) for r in rs)
                          for k in rs[0].get("storage_bytes", {}) if k != "total"},
                "touches_full_data": any(r.get("touches_full_data") for r in rs),
                "roc_auc": _mean((r.get("run_extra") or {}).get("roc_auc") for r in rs),
                "roc_auc_std": _pstdev((r.get("run_extra") or {}).get("roc_auc") for r in rs),
                "curves": [(condense_seconds(r, clock) or 0.0,
                            [(c[time_key], c["acc"]) for c in r.get("curve", []) if time_key in c]) for r in rs],
                "source": rs[0].get("source", ""),
            })
        agg.sort(key=lambda a: (a["ipc"] if a["ipc"] else 10 ** 9, a["method"]))
        out[tkey] = agg
    add_speedups(out)
    add_byte_matches(out)
    return dict(sorted(out.items()))


def _pstdev(xs):
    xs = [x for x in xs if x is not None]
    return statistics.pstdev(xs) if len(xs) > 1 else (0.0 if xs else None)


BYTE_MATCHED = ("mirage",)   # methods whose storage is set beside random subsets of comparable bytes


def add_byte_matches(tables: dict) -> None:
    """For graph summaries (Mirage): the ``random`` row of the same table whose storage bytes are
    closest (in ratio) to the row's, so a reader sees the equal-bytes comparison directly."""
    for rows in tables.values():
        randoms = [a for a in rows if a["method"] == "random" and a["bytes"]]
        for a in rows:
            if a["method"] not in BYTE_MATCHED or not randoms or not a["bytes"]:
                continue
            best = min(randoms, key=lambda r: (abs(math.log(r["bytes"] / a["bytes"])), r["ipc"]))
            a["byte_match"] = {"ipc": best["ipc"], "mean": best["mean"], "std": best["std"],
                               "roc_auc": best["roc_auc"], "ratio": best["bytes"] / a["bytes"]}


def add_speedups(tables: dict) -> None:
    """TTA speedup of every row against ``full`` trained by the same recipe (protocol name and
    preset; the full run may use its own epochs and batch size): full TTA / row TTA per target."""
    refs = {}
    for rows in tables.values():
        for a in rows:
            if a["method"] == "full":
                refs[(a["dataset"], a["arch"], a["recipe"])] = a
    for rows in tables.values():
        for a in rows:
            ref = refs.get((a["dataset"], a["arch"], a["recipe"]))
            a["speedup"] = {}
            if ref is None or ref is a:
                continue
            for t, v in a["tta"].items():
                r = ref["tta"].get(t)
                if r and r["mean"] is not None and v["mean"]:
                    a["speedup"][t] = r["mean"] / v["mean"]


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


def fmt_tta(v: dict, speedup: float | None = None) -> str:
    if v.get("unmeasured"):
        return "—"
    if v["mean"] is not None:
        return fmt_seconds(v["mean"]) + (f" (×{speedup:.1f})" if speedup is not None else "")
    return f"n.r. ({v['reached']}/{v['n']})"


def row_cells(a: dict) -> list[str]:
    ipc = "all" if not a["ipc"] else str(a["ipc"])
    method = a["method"] + (f" {FULL_MARK}" if a["touches_full_data"] else "")
    acc = f"{a['mean']:.2f} ± {a['std']:.2f} ({a['n']})"
    if a.get("stopped_early"):
        acc = f"stopped at targets ({a['mean']:.2f}, {a['n']})"
    cells = [ipc, method, acc]
    if a["roc_auc"] is not None:
        std = a.get("roc_auc_std")
        cells.append(f"{a['roc_auc']:.1f}" + (f" ± {std:.1f}" if std is not None and a["n"] > 1 else ""))
    cells += [fmt_tta(a["tta"][f"{t:g}"], a.get("speedup", {}).get(f"{t:g}")) for t in a["targets"]]
    teacher = a["teacher_seconds"] or 0.0
    cells += [fmt_seconds(a["condense_seconds"]) + (f" ({fmt_seconds(teacher)})" if teacher else ""),
              fmt_seconds(a["train_seconds"]), fmt_bytes(a["bytes"]) + fmt_parts(a.get("parts", {}))]
    return cells


PART_NAMES = {"images": "img", "soft_labels": "soft", "compensators": "comp", "indices": "idx", "graphs": "graphs"}


def fmt_parts(parts: dict) -> str:
    """A breakdown when a set stores more than images and labels (soft labels, compensators)."""
    shown = {k: v for k, v in parts.items() if k not in ("labels",) and v}
    if len(shown) < 2:
        return ""
    return " (" + " · ".join(f"{PART_NAMES.get(k, k)} {fmt_bytes(v)}" for k, v in shown.items()) + ")"


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
        cells.insert(3, "—")
    if has_match:
        cells.append(match_cell(a))
    return cells


def header(rows: list[dict]) -> list[str]:
    h = ["IPC", "method", "acc % mean ± std (n)"]
    if any(a["roc_auc"] is not None for a in rows):
        h.append("ROC-AUC %")
    targets = rows[0]["targets"] if rows else []
    h += [f"TTA@{t:g}% s" for t in targets]
    h += ["condense s (teacher s)", "train s", "storage"]
    if any(a.get("byte_match") for a in rows):
        h.append("random at ≈ bytes: acc % (IPC, its bytes ×)")
    return h


def dataset_label(dataset: str, source: str) -> str:
    """The dataset's name, marked when the data is the lossy JPEG copy (results must say so)."""
    return f"{dataset} (JPEG copy)" if "JPEG" in (source or "") else dataset


def markdown(tables: dict, failed: list[dict], clock: str = "wall") -> str:
    lines = ["# Leaderboard", ""]
    if clock == "cpu":
        lines += ["Time-to-accuracy, condense and train seconds on the process CPU-time clock (single-threaded "
                  "runs), where the record carries it; teacher seconds stay on the wall clock.", ""]
    for (dataset, arch, proto), rows in tables.items():
        src = rows[0]["source"]
        lines += [f"## {dataset_label(dataset, src)} · {arch} · {proto}", ""]
        if src:
            lines += [f"Source: {src}." + (" Results on this lossy JPEG copy of the dataset are not results on "
                                            "the original." if "JPEG" in src else ""), ""]
        h = header(rows)
        lines.append("| " + " | ".join(h) + " |")
        lines.append("|" + "|".join("---" for _ in h) + "|")
        for a in rows:
            lines.append("| " + " | ".join(table_cells(a, rows, h)) + " |")
        lines.append("")
    lines += [f"{FULL_MARK} touches the full training set. TTA = condense seconds + train seconds to the first "
              "checkpoint at or above the target test accuracy; \"n.r. (k/n)\": only k of n seeds reached it; "
              "(×s): speedup against `full` trained by the same recipe; \"—\": the records do not carry this clock. "
              "Storage counts every stored part (images, labels, soft labels, schedules, summaries).", ""]
    if any(a.get("byte_match") for rows in tables.values() for a in rows):
        lines += ["Graph summaries (Mirage) carry no IPC of graphs: their last column is the `random` row of the "
                  "same table whose storage is closest to theirs, with that row's IPC and its bytes relative to "
                  "the summary's. ROC-AUC is mean ± std over the same seeds as accuracy.", ""]
    if failed:
        lines += ["## Failed cells", ""]
        for r in sorted(failed, key=lambda r: (r["dataset"], r["method"], r["ipc"], r["seed"])):
            lines.append(f"- {r['dataset']} {r['method']} ipc={r['ipc']} seed={r['seed']} {r.get('arch', '')}: "
                         f"{r.get('error', '?')}")
        lines.append("")
    return "\n".join(lines)


def write_csv(tables: dict, f) -> None:
    """The table rows as CSV into the text stream ``f``."""
    cols = ["dataset", "arch", "protocol", "method", "ipc", "n", "seeds", "mean", "std", "accs", "roc_auc",
            "condense_seconds", "teacher_seconds", "train_seconds", "bytes", "touches_full_data", "tta",
            "roc_auc_std", "bytes_matched_random", "bytes_by_part", "source"]
    w = csv.writer(f)
    w.writerow(cols)
    for rows in tables.values():
        for a in rows:
            tta = ";".join(f"{t}:{v['mean'] if v['mean'] is not None else 'n.r.'}" for t, v in a["tta"].items())
            w.writerow([a["dataset"], a["arch"], a["protocol"], a["method"], a["ipc"], a["n"],
                        " ".join(map(str, a["seeds"])), f"{a['mean']:.4f}", f"{a['std']:.4f}",
                        " ".join(f"{x:.4f}" for x in a["accs"]), a["roc_auc"] if a["roc_auc"] is not None else "",
                        a["condense_seconds"], a["teacher_seconds"], a["train_seconds"], a["bytes"],
                        a["touches_full_data"], tta,
                        a["roc_auc_std"] if a.get("roc_auc_std") is not None else "",
                        match_cell(a) if a.get("byte_match") else "",
                        ";".join(f"{k}:{v:.0f}" for k, v in a.get("parts", {}).items() if v is not None),
                        a["source"]])


# ----------------------------------------------------------------------------- plots


def plots(tables: dict, clock: str = "wall") -> dict[str, bytes]:
    """PNG bytes per (table, plot name): accuracy against IPC, wall time and storage bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    for tkey, rows in tables.items():
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        by_method = defaultdict(list)
        for a in rows:
            by_method[a["method"]].append(a)
        ipcs = sorted({a["ipc"] for a in rows if a["ipc"]})
        palette = plt.get_cmap("tab10")
        for i, (method, rs) in enumerate(sorted(by_method.items())):
            color = palette(i % 10)
            rs = sorted(rs, key=lambda a: a["ipc"])
            if rs[0]["ipc"] == 0:  # full: a reference line
                axes[0].axhline(rs[0]["mean"], ls="--", color=color, label=f"{method} (whole set)")
            else:
                axes[0].errorbar([a["ipc"] for a in rs], [a["mean"] for a in rs], yerr=[a["std"] for a in rs],
                                 marker="o", capsize=3, label=method, color=color)
            big = rs[-1]
            xs, ys = _mean_curve(big["curves"])
            if xs:
                axes[1].plot(xs, ys, label=f"{method} (IPC {big['ipc'] or 'all'})", color=color)
            axes[2].plot([a["bytes"] for a in rs], [a["mean"] for a in rs], marker="o", label=method, color=color)
        axes[0].set(xlabel="IPC", ylabel="test accuracy %", title="accuracy vs IPC")
        if ipcs:
            axes[0].set_xscale("log")
            axes[0].set_xticks(ipcs, [str(i) for i in ipcs])
        clock_name = "CPU" if clock == "cpu" else "wall"
        axes[1].set(xlabel="condense + train seconds", ylabel="test accuracy %", title=f"accuracy vs {clock_name} time")
        axes[1].set_xscale("symlog", linthresh=1.0)
        axes[2].set(xlabel="storage bytes", ylabel="test accuracy %", title="accuracy vs storage")
        axes[2].set_xscale("log")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(" · ".join(tkey))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        out[" · ".join(tkey)] = buf.getvalue()
    return out


def _mean_curve(curves):
    """Mean accuracy and mean (condense + train) seconds at each checkpoint index over seeds."""
    curves = [(off, c) for off, c in curves if c]
    if not curves:
        return [], []
    n = min(len(c) for _, c in curves)
    xs = [statistics.fmean(off + c[i][0] for off, c in curves) for i in range(n)]
    ys = [statistics.fmean(c[i][1] for _, c in curves) for i in range(n)]
    return xs, ys


def html_page(tables: dict, failed: list[dict], pngs: dict[str, bytes]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>condense leaderboard</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:nth-child(2),th:nth-child(2){text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%}</style></head><body><h1>condense leaderboard</h1>"]
    for tkey, rows in tables.items():
        title = " · ".join(tkey)
        heading = " · ".join((dataset_label(tkey[0], rows[0]["source"]), *tkey[1:]))
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if rows[0]["source"]:
            parts.append(f"<p>Source: {html.escape(rows[0]['source'])}</p>")
        h = header(rows)
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in h) + "</tr>")
        for a in rows:
            cells = table_cells(a, rows, h)
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
        if title in pngs:
            b64 = base64.b64encode(pngs[title]).decode()
            parts.append(f"<img alt='plots for {html.escape(title)}' src='data:image/png;base64,{b64}'>")
    parts.append(f"<p>{FULL_MARK} touches the full training set. TTA includes condense seconds; "
                 "n.r. = not reached.</p>")
    if failed:
        parts.append("<h2>Failed cells</h2><ul>")
        for r in failed:
            parts.append(f"<li>{html.escape(str(r['dataset']))} {html.escape(str(r['method']))} ipc={r['ipc']} "
                         f"seed={r['seed']}: {html.escape(str(r.get('error', '?')))}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build(dirs, out: Path | None, with_plots: bool = True, clock: str = "wall") -> str:
    """Write the three leaderboard files into ``out`` (None: write nothing); returns the markdown."""
    ok, failed = load_records(dirs)
    tables = aggregate(ok, clock)
    md = markdown(tables, failed, clock)
    if out is None:
        return md
    out = Path(out)
    atomic_write(out / "leaderboard.md", data=md.encode())
    buf = io.StringIO()
    write_csv(tables, buf)
    atomic_write(out / "leaderboard.csv", data=buf.getvalue().encode())
    pngs = plots(tables, clock) if with_plots and tables else {}
    for i, (title, png) in enumerate(pngs.items()):
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
    args = ap.parse_args(argv)
    out = args.out or (args.dirs[0] if args.dirs[0].is_dir() else args.dirs[0].parent)
    try:
        md = build(args.dirs, out, with_plots=not args.no_plots, clock=args.clock)
    except OSError as e:
        note(f"leaderboard files not written to {out} ({e.strerror or e}); printed only")
        md = build(args.dirs, None, clock=args.clock)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
