"""The cross-architecture table (DC, Zhao et al., ICLR 2021, Table 2): per dataset, configuration and IPC,
one row per method and one column per architecture that trained its sets, each cell mean ± std (n) and,
beside ConvNet's column, the change from it.

Columns come from tables that differ in the architecture alone: the same protocol (its fields but the
architecture's own settings), step budget, device, source data, curve method and preprocessing. Rows
under another budget or configuration stay in their own table. A set condensed with teachers names
them in its row, so that a set that saw one architecture is read as such.
"""
from __future__ import annotations

import json
from collections import defaultdict

from .records import canon, cut
from .tables import protocol_label

REFERENCE_ARCH = "convnet"


def _arch_settings(p: dict) -> str:
    kw = p.get("arch_kwargs") or {}
    return ", ".join(f"{k} {v}" for k, v in sorted(kw.items()))


def _row_label(a: dict) -> str:
    teachers = (a.get("config") or {}).get("teachers")
    if not teachers:
        return cut(a["method_label"])
    names = [t if isinstance(t, str) else json.dumps(t, sort_keys=True) for t in (teachers if isinstance(teachers, list)
                                                                                  else [teachers])]
    return f"{cut(a['method_label'])} (teachers: {', '.join(names)})"


def cross_arch(tables: dict) -> list[dict]:
    """One entry per (dataset, configuration, IPC) trained on two or more architectures."""
    groups: dict[tuple, dict] = defaultdict(dict)
    for k, t in tables.items():
        p = {f: v for f, v in t["protocol_dict"].items() if f != "arch_kwargs"}
        groups[(k[0], canon(p), *k[3:])][k[1]] = t
    out = []
    for gk, by_arch in groups.items():
        if len(by_arch) < 2:
            continue
        archs = sorted(by_arch, key=lambda a: (a != REFERENCE_ARCH, a))
        ipcs = sorted({a["ipc"] for t in by_arch.values() for a in t["rows"]}, key=lambda i: i or 10 ** 9)
        for ipc in ipcs:
            rows: dict[tuple, dict] = {}
            for arch in archs:
                for a in by_arch[arch]["rows"]:
                    if a["ipc"] == ipc and not a.get("stopped_early"):
                        rows.setdefault((a["method_label"], a["config_key"]), {"label": _row_label(a)})[arch] = a
            if rows:
                first = by_arch[archs[0]]
                out.append({"dataset": gk[0], "ipc": ipc, "archs": archs, "rows": list(rows.values()),
                            "heading": first["heading"],
                            "columns": {arch: _arch_settings(by_arch[arch]["protocol_dict"]) for arch in archs},
                            "protocol": protocol_label(first["protocol_dict"])})
    return out


def cell(row: dict, arch: str) -> str:
    a = row.get(arch)
    if a is None:
        return "—"
    text = f"{a['mean']:.2f} ± {a['std']:.2f} ({a['n']})"
    ref = row.get(REFERENCE_ARCH)
    if arch != REFERENCE_ARCH and ref is not None:
        text += f", {a['mean'] - ref['mean']:+.2f}"
    if a.get("train_memory") is not None:
        text += f"; {a['train_memory'] / 2 ** 20:.0f} MiB"
    return text


def columns_note(x: dict) -> str:
    return ("Each column trains the protocol's step budget (" + x["protocol"] + "); architecture settings: "
            + "; ".join(f"{arch}: {s or 'its defaults'}" for arch, s in x["columns"].items())
            + ". Cells: mean ± std (n)"
            + (f", beside `{REFERENCE_ARCH}` the change from its column" if REFERENCE_ARCH in x["columns"] else "")
            + ", and the peak memory a training run added (on a GPU, CUDA's peak allocated).")


def markdown_lines(tables: dict, md) -> list[str]:
    """The cross-architecture tables as Markdown (``md`` escapes a record's strings)."""
    lines = []
    for x in cross_arch(tables):
        ipc = "all" if not x["ipc"] else x["ipc"]
        lines += [f"## Cross-architecture · {md(x['dataset'])} · IPC {md(ipc)} · {md(x['heading'])}", "",
                  md(columns_note(x)), "",
                  "| method | " + " | ".join(md(a) for a in x["archs"]) + " |",
                  "|---|" + "|".join("---" for _ in x["archs"]) + "|"]
        lines += ["| " + md(r["label"]) + " | " + " | ".join(cell(r, a) for a in x["archs"]) + " |" for r in x["rows"]]
        lines.append("")
    return lines


def title(x: dict) -> str:
    """A cross-architecture table's title (its plot is keyed by it)."""
    return f"Cross-architecture · {x['dataset']} · IPC {x['ipc'] or 'all'} · {x['heading']}"
