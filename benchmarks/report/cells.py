"""Table cells: a row's figures as text (seconds, bytes, time-to-accuracy, memory, storage parts, the
published band), and the escaping every string from a record gets in Markdown and CSV."""
from __future__ import annotations

_CONTROL = {c: None for c in range(32) if c not in (9, 10, 13)}


def md(text) -> str:
    """A record's string made inert in a Markdown table or heading: backslash, ``|``, ``<``, ``>`` and
    ``&`` escaped, line breaks turned into spaces, other control characters dropped."""
    s = str(text).translate(_CONTROL)
    s = s.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return " ".join(s.splitlines()) if ("\n" in s or "\r" in s) else s.replace("\t", " ")


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def csv_cell(v):
    """A CSV cell that no spreadsheet runs as a formula (OWASP): text starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return gets a leading apostrophe; numbers stay numbers."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(v):
        return "'" + v
    return v



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


def fmt_tta(v: dict, speedup: float | None = None, no_teacher: dict | None = None) -> str:
    if v.get("unmeasured"):
        return "—"
    if v["mean"] is not None:
        out = fmt_seconds(v["mean"]) + (f" (×{speedup:.1f})" if speedup is not None and speedup >= 1 else
                                        f" (×{speedup:.2g})" if speedup is not None else "")
        if no_teacher is not None and no_teacher.get("mean") is not None and no_teacher["mean"] < v["mean"] - 1e-9:
            out += f" [{fmt_seconds(no_teacher['mean'])} w/o teachers]"
        return out
    return f"n.r. ({v['reached']}/{v['n']})"


def fmt_memory(a: dict) -> str:
    """Peak memory of condensation (teachers apart, in brackets) and of training (the largest run)."""
    def one(v):
        return "—" if v is None else fmt_bytes(v)
    t = a.get("teacher_memory")
    return f"{one(a.get('condense_memory'))}" + (f" ({one(t)})" if t is not None else "") + \
        f" / {one(a.get('train_memory'))}"


def fmt_n(a: dict) -> str:
    if a["deterministic"] and a["sets"] == 1:
        return f"1 set × {a['trainings']}"
    return f"{a['sets']} × {a['trainings']}" if a["trainings"] > 1 else str(a["n"])


def fmt_steps(a: dict) -> str:
    if a["steps"] is None:
        return "—"
    return f"{a['steps']:,}" + (f" ({a['samples']:,})" if a.get("samples") else "")


PART_NAMES = {"images": "img", "soft_labels": "soft", "compensators": "comp", "indices": "idx", "graphs": "graphs",
              "replay": "replay views"}


def fmt_parts(parts: dict) -> str:
    """A breakdown when a set stores more than images and labels (soft labels, compensators); with
    replay labels (per-epoch logits and the views they label) also their share of the total."""
    shown = {k: v for k, v in parts.items() if k not in ("labels",) and v}
    if len(shown) < 2:
        return ""
    out = " · ".join(f"{PART_NAMES.get(k, k)} {fmt_bytes(v)}" for k, v in shown.items())
    if shown.get("replay"):
        total = sum(v for k, v in parts.items() if k != "total" and v)
        share = (shown.get("soft_labels", 0) + shown["replay"]) / max(1, total)
        out += f" · replay labels {100 * share:.0f} %"
    return f" ({out})"


def match_cell(a: dict) -> str:
    m = a.get("byte_match")
    if not m:
        return "—"
    return f"{m['mean']:.2f} ± {m['std']:.2f} (IPC {m['ipc']}, {m['ratio']:.2f}× bytes)"


def fmt_published(a: dict) -> str:
    """The published figure for the row's cell and whether the row lies in its band (or why it is not
    compared); "—" without one."""
    v = a.get("published")
    return "—" if v is None else v.mark()
