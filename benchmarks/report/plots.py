"""The leaderboard's plots: per table, accuracy against IPC, against condense + train time (screened
estimates hollow, full passes filled) and against storage bytes, as PNG bytes."""
from __future__ import annotations

import io
import statistics
from collections import defaultdict

from .records import cut


def plots(tables: dict, clock: str = "wall") -> dict[str, bytes]:
    """PNG bytes per (table, plot name): accuracy against IPC, wall time and storage bytes."""
    # On use: a table without plots (--no-plots, tests) needs no matplotlib, and the Agg backend
    # must be chosen before pyplot is imported.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    for tkey, t in tables.items():
        rows = t["rows"]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        by_method = defaultdict(list)
        for a in rows:
            by_method[a["method"]].append(a)
        ipcs = sorted({a["ipc"] for a in rows if a["ipc"]})
        palette = plt.get_cmap("tab10")
        for i, (method, rs) in enumerate(sorted(by_method.items())):
            # a legend entry, not a record: long names cost minutes to lay out, control characters have no glyph
            method = cut("".join(ch for ch in method if ch.isprintable()))
            color = palette(i % 10)
            rs = sorted(rs, key=lambda a: a["ipc"])
            if rs[0]["ipc"] == 0:  # full: a reference line
                axes[0].axhline(rs[0]["mean"], ls="--", color=color, label=f"{method} (whole set)")
            else:
                axes[0].errorbar([a["ipc"] for a in rs], [a["mean"] for a in rs], yerr=[a["std"] for a in rs],
                                 marker="o", capsize=3, label=method, color=color)
            big = rs[-1]
            xs, ys, full = _mean_curve(big["curves"])
            if xs:
                axes[1].plot(xs, ys, label=f"{method} (IPC {big['ipc'] or 'all'})", color=color, lw=1)
                for on_full, face in ((True, color), (False, "none")):  # screened estimates hollow
                    pts = [(x, y) for x, y, f in zip(xs, ys, full) if f == on_full]
                    if pts:
                        axes[1].scatter(*zip(*pts), s=14, facecolors=face, edgecolors=color, linewidths=0.8, zorder=3)
            axes[2].plot([a["bytes"] for a in rs], [a["mean"] for a in rs], marker="o", label=method, color=color)
        axes[0].set(xlabel="IPC", ylabel="test accuracy %", title="accuracy vs IPC")
        if ipcs:
            axes[0].set_xscale("log")
            axes[0].set_xticks(ipcs, [str(i) for i in ipcs])
        clock_name = "CPU" if clock == "cpu" else "wall"
        axes[1].set(xlabel="condense + train seconds", ylabel="test accuracy %", title=f"accuracy vs {clock_name} time (hollow: screened)")
        axes[1].set_xscale("symlog", linthresh=1.0)
        axes[2].set(xlabel="storage bytes", ylabel="test accuracy %", title="accuracy vs storage")
        axes[2].set_xscale("log")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        title = f"{tkey[0]} · {tkey[1]} · {t['heading']}"
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        out[title] = buf.getvalue()
    return out


def _mean_curve(curves):
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
