"""The page's plots, as PNG bytes: per table, accuracy against IPC (only with two IPCs or more), the
Pareto fronts of accuracy against storage bytes and against condense + train seconds, and the
time-to-accuracy curves (screened estimates hollow, full passes filled); the cross-architecture
tables as heatmaps; DD-Ranking scores as bars. Colours are the Okabe–Ito palette (distinguishable with
the common colour-vision deficiencies), each method also has its own marker, and every log axis has
at least three labelled ticks.
"""
from __future__ import annotations

import io
import math
import re
import statistics

from .cells import fmt_bytes
from .records import cut

#: Okabe & Ito (2008), "Color universal design": safe for protanopia, deuteranopia and tritanopia
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _plt():
    # On use: a table without plots (--no-plots, tests) needs no matplotlib, and the Agg backend
    # must be chosen before pyplot is imported.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _label(method: str, limit: int | None = None) -> str:
    """A legend or tick label: printable characters only (control characters have no glyph), without the
    code-identity tag the tables carry, cut (long names cost minutes to lay out)."""
    text = re.sub(r"\s*⟨[^⟩]*⟩", "", "".join(ch for ch in method if ch.isprintable()))
    return cut(text) if limit is None else cut(text, limit)


def log_ticks(lo: float, hi: float, at_least: int = 3) -> list[float]:
    """At least ``at_least`` round values in [lo, hi] for a log axis: powers of ten, then 1-2-5, then
    1-1.5-2-3-5-7 per decade, then interior points of a geometric spacing, rounded."""
    if not (lo > 0 and hi > 0):
        raise ValueError(f"log ticks need positive limits, got {lo}, {hi}")
    lo, hi = min(lo, hi), max(lo, hi)
    for mantissas in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
        ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for m in mantissas if lo * (1 - 1e-9) <= m * 10.0 ** e <= hi * (1 + 1e-9)]
        if len(ticks) >= at_least:
            return ticks
    for digits in (2, 3, 4):   # interior points, rounded: a tick rounded past a limit would not be drawn
        ticks = sorted({float(f"{lo * (hi / lo) ** (k / (at_least + 1)):.{digits}g}") for k in range(1, at_least + 1)})
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= at_least:
            return ticks
    return [lo * (hi / lo) ** (k / (at_least + 1)) for k in range(1, at_least + 1)]


def _seconds(v: float) -> str:
    return f"{v:.3g} s" if v < 1000 else f"{v / 60:.3g} min" if v < 7200 else f"{v / 3600:.3g} h"


def set_log_axis(ax, values, fmt, axis: str = "x") -> None:
    """A log axis over ``values`` (positive ones) with at least three labelled ticks in ``fmt``."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    vals = [v for v in values if v and v > 0]
    if not vals:
        return
    lo, hi = min(vals) / 1.5, max(vals) * 1.5
    ticks = log_ticks(lo, hi)
    a = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)
    a.set_major_locator(FixedLocator(ticks))
    a.set_ticklabels([fmt(t) for t in ticks])
    a.set_minor_locator(NullLocator())
    a.set_minor_formatter(NullFormatter())


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both cost (lower x) and accuracy (higher y), by cost."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _styles(rows: list[dict]) -> dict[str, tuple[str, str]]:
    methods = sorted({a["method"] for a in rows})
    return {m: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]) for i, m in enumerate(methods)}


def _pareto_panel(ax, rows, styles, cost, fmt, xlabel) -> None:
    pts = []
    for a in rows:
        x = cost(a)
        if x is None or x <= 0:
            continue
        color, marker = styles[a["method"]]
        ax.errorbar([x], [a["mean"]], yerr=[a["ci95"] or 0], marker=marker, color=color, capsize=2, ls="none", ms=6)
        pts.append((x, a["mean"]))
    if not pts:
        ax.set_visible(False)
        return
    front = pareto_front(pts)
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#555555", lw=1, ls="--",
            label="Pareto front", zorder=0)
    set_log_axis(ax, [p[0] for p in pts], fmt)
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)")


def panels(rows: list[dict]) -> list[str]:
    """A table's plots: accuracy against IPC only where the table has two IPCs or more."""
    return (["ipc"] if len({a["ipc"] for a in rows if a["ipc"]}) >= 2 else []) + ["bytes", "time", "curves"]


def table_figure(t: dict, clock: str = "wall") -> bytes:
    """One table's plots side by side (PNG)."""
    plt = _plt()
    rows = [a for a in t["rows"] if not a.get("stopped_early")] or t["rows"]
    styles = _styles(rows)
    ipcs = sorted({a["ipc"] for a in rows if a["ipc"]})
    panels_ = panels(rows)
    fig, axes = plt.subplots(1, len(panels_), figsize=(4.2 * len(panels_), 3.6))
    ax = dict(zip(panels_, axes))
    clock_name = "CPU" if clock == "cpu" else "wall"
    if "ipc" in ax:
        for method, (color, marker) in styles.items():
            rs = sorted((a for a in rows if a["method"] == method and a["ipc"]), key=lambda a: a["ipc"])
            if rs:
                ax["ipc"].errorbar([a["ipc"] for a in rs], [a["mean"] for a in rs], yerr=[a["ci95"] or 0 for a in rs],
                                   marker=marker, color=color, capsize=2)
            full = [a for a in rows if a["method"] == method and not a["ipc"]]
            if full:
                ax["ipc"].axhline(full[0]["mean"], ls=":", color=color)
        set_log_axis(ax["ipc"], ipcs, lambda v: f"{v:g}")
        ax["ipc"].set(xlabel="images (graphs) per class, log", ylabel="test accuracy (%)",
                      title="accuracy vs IPC (± 95 % CI)")
    _pareto_panel(ax["bytes"], rows, styles, lambda a: a["bytes"], fmt_bytes, "storage (bytes, log)")
    ax["bytes"].set_title("accuracy vs storage")
    _pareto_panel(ax["time"], rows, styles, lambda a: (a["condense_seconds"] or 0) + (a["train_seconds"] or 0)
                  if a["train_seconds"] is not None else None, _seconds, f"condense + train time ({clock_name}, log)")
    ax["time"].set_title("accuracy vs cost")
    xs_all = []
    for a in rows:
        xs, ys, full = mean_curve(a["curves"])
        if not xs:
            continue
        color, marker = styles[a["method"]]
        ax["curves"].plot(xs, ys, color=color, lw=1)
        for on_full, face in ((True, color), (False, "white")):  # screened estimates hollow
            pts = [(x, y) for x, y, f in zip(xs, ys, full) if f == on_full]
            if pts:
                ax["curves"].scatter(*zip(*pts), s=16, marker=marker, facecolors=face, edgecolors=color, linewidths=0.9,
                                     zorder=3)
        xs_all += [x for x in xs if x > 0]
    set_log_axis(ax["curves"], xs_all, _seconds)
    ax["curves"].set(xlabel=f"condense + train time ({clock_name}, log)", ylabel="test accuracy (%)",
                     title="accuracy over training (hollow: screened)")
    for a_ in axes:
        a_.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker=m, ls="-", label=_label(meth)) for meth, (c, m) in styles.items()]
    handles.append(plt.Line2D([], [], color="#555555", ls="--", label="Pareto front"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _png(fig, plt)


def heatmap(x: dict) -> bytes:
    """A cross-architecture table (:func:`.crossarch.cross_arch` entry) as a heatmap of mean accuracy."""
    plt = _plt()
    archs, rows = x["archs"], x["rows"]
    data = [[(r[a]["mean"] if a in r else math.nan) for a in archs] for r in rows]
    fig, ax = plt.subplots(figsize=(4.5 + 1.2 * len(archs), 1.4 + 0.45 * len(rows)))
    im = ax.imshow(data, cmap="cividis", aspect="auto")   # cividis: readable with colour-vision deficiencies
    ax.set_xticks(range(len(archs)), [_label(a) for a in archs])
    ax.set_yticks(range(len(rows)), [_label(r["label"], 36) for r in rows])
    finite = [v for row in data for v in row if not math.isnan(v)]
    mid = statistics.fmean(finite) if finite else 0
    for i, row in enumerate(data):
        for j, v in enumerate(row):
            ax.text(j, i, "—" if math.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if not math.isnan(v) and v < mid else "black")
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    ax.set_title(f"{x['dataset']} · IPC {x['ipc'] or 'all'}: accuracy by architecture", fontsize=9)
    fig.tight_layout()
    return _png(fig, plt)


def score_bars(rows: list[dict]) -> bytes:
    """DD-Ranking scores as grouped horizontal bars: HLR and IOR (accuracy fractions), LRS and ARS."""
    plt = _plt()
    labels = [_label(f"{_label(str(r['method']), 30)} · IPC {r['ipc']} · {r['dataset']} · {r['arch']}", 60) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.42 * len(rows)), sharey=True)
    for ax, keys in zip(axes, (("hlr", "ior"), ("lrs", "ars"))):
        h = 0.38
        for k, key in enumerate(keys):
            vals = [r[key] if r[key] is not None else 0.0 for r in rows]
            ax.barh([i + (k - 0.5) * h for i in range(len(rows))], vals, height=h, color=PALETTE[k + (2 if key in
                    ("lrs", "ars") else 0)], label=key.upper(), hatch="//" if k else None)
        ax.axvline(0, color="black", lw=0.8)
        ax.legend(fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), labels, fontsize=8)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("accuracy difference (fraction)")
    axes[1].set_xlabel("score (0–1)")
    fig.suptitle("DD-Ranking scores", fontsize=9)
    fig.tight_layout()
    return _png(fig, plt)


def _png(fig, plt) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def table_title(tkey: tuple, t: dict) -> str:
    return f"{tkey[0]} · {tkey[1]} · {t['heading']}"


def plots(tables: dict, clock: str = "wall") -> dict[str, bytes]:
    """PNG bytes per table title, per cross-architecture title and for the DD-Ranking scores."""
    from .crossarch import cross_arch, title
    from .render import score_rows

    out = {table_title(k, t): table_figure(t, clock) for k, t in tables.items()}
    for x in cross_arch(tables):
        out[title(x)] = heatmap(x)
    sc = score_rows(tables)
    if sc:
        out["DD-Ranking scores"] = score_bars(sc)
    return out


def mean_curve(curves):
    """Mean (condense + train) seconds, mean accuracy, and whether every seed's accuracy there is a
    full-test-set pass, at each checkpoint index over seeds (a screened estimate in any seed makes
    the mean point an estimate: the plot draws it hollow)."""
    curves = [(off, c) for off, c in curves if c]
    if not curves:
        return [], [], []
    n = min(len(c) for _, c in curves)
    xs = [statistics.fmean(off + c[i][0] for off, c in curves) for i in range(n)]
    ys = [statistics.fmean(c[i][1] for _, c in curves) for i in range(n)]
    full = [all(len(c[i]) < 3 or c[i][2] for _, c in curves) for i in range(n)]
    return xs, ys, full

