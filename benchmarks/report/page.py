"""The leaderboard page: one self-contained HTML file per results folder (no CDN; its script and style
are inlined from ``page.js`` and ``page.css`` beside this module, its plots embedded as PNG).

- Tables sort by any column (buttons in a sticky header), filter by dataset, architecture, protocol,
  IPC and method, show the compact columns by default and the long ones behind a toggle, mark each
  column's best value and rank rows with ties where their 95 % intervals overlap.
- A row opens its provenance: the exact command, the code identity, the machine, the protocol's fields,
  the method config, the deviations, and links to its set files (and their ``inspect`` output) where
  they are in the folder.
- Compare mode overlays two rows' curves and gives their difference with a Welch 95 % interval.

Every string from a record is escaped: HTML text and attributes through :func:`html.escape`, the data
the script reads as JSON with ``<``, ``>`` and ``&`` written as ``\\u`` escapes; the script inserts
text with ``textContent`` only.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import shlex
import string
from pathlib import Path

from scipy import stats

from . import crossarch
from .layout import best_marks, columns
from .plots import mean_curve, table_title
from .records import canon, cut
from .render import (BELOW_LEGEND, FULL_MARK, PUBLISHED_LEGEND, STRUCTURE_COLUMNS, dataset_label, fmt_score,
                     score_rows, structure_cells)

HERE = Path(__file__).parent
TEMPLATE = string.Template((HERE / "page.html").read_text(encoding="utf-8"))
FILTERS = (("dataset", "dataset"), ("arch", "architecture"), ("protocol", "protocol"), ("ipc", "IPC"),
           ("method", "method"))
#: Student-t 97.5 % quantiles by degrees of freedom (index 0 unused), for the compare panel's interval
T975 = [None] + [round(float(stats.t.ppf(0.975, df)), 4) for df in range(1, 201)]


def esc(s) -> str:
    return html.escape(str(s), quote=True)


def script_json(obj) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment, whatever the strings hold."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def _key_attr(v) -> str:
    if isinstance(v, bool) or v is None:
        return ""
    if isinstance(v, (int, float)):
        return repr(float(v)) if math.isfinite(v) else ""
    return esc(v)


def reconstructed_command(a: dict, p: dict) -> str:
    """A command for a record made before records kept theirs: the cell and the protocol's name, preset
    and precision (options the record cannot tell from their defaults are left out)."""
    seeds = sorted(set(a["seeds"]))
    parts = ["python", "-m", "benchmarks.run", "--datasets", a["dataset"], "--methods", a["method"]]
    parts += (["--ipc", str(a["ipc"])] if a["ipc"] else []) + ["--seeds", *map(str, seeds), "--archs", a["arch"]]
    parts += ["--protocol", str(p.get("name"))] + (["--preset", str(p["preset"])] if p.get("preset") != "quick" else [])
    if p.get("precision", "fp32") != "fp32":
        parts += ["--precision", str(p["precision"])]
    return shlex.join(parts)


def _set_links(rs: list[dict], out: Path | None) -> list[tuple[str, str | None, str | None]]:
    """(set file name, its link from the page, its inspect output's link) per distinct set file."""
    seen, links = set(), []
    for r in rs:
        rel = r.get("set_path") if isinstance(r.get("set_path"), str) else None
        where = str(r.get("_where", "")).rsplit(":", 1)[0]
        if not rel or not where or rel in seen:
            continue
        seen.add(rel)
        path = Path(where).parent / rel
        link = inspect = None
        if out is not None and path.is_file():
            link = os.path.relpath(path, out)
            txt = path.with_name(path.name + ".inspect.txt")
            inspect = os.path.relpath(txt, out) if txt.is_file() else None
        links.append((rel, link, inspect))
    return links


def provenance(a: dict, t: dict, out: Path | None) -> str:
    """A row's provenance as a definition list (every value escaped)."""
    rs = a.get("records") or []
    cmds = list(dict.fromkeys(r["command"] for r in rs if isinstance(r.get("command"), str)))
    if not cmds:
        cmds = [reconstructed_command(a, t["protocol_dict"]) + "   # reconstructed from the record"]
    gits = sorted({str(r["code"]["git"]) for r in rs if isinstance(r.get("code"), dict) and r["code"].get("git")})
    machines = []
    for r in rs:
        m = r.get("machine") if isinstance(r.get("machine"), dict) else {}
        desc = ", ".join(f"{k} {m[k]}" for k in ("device", "gpu", "cpu_count", "torch_threads", "allocator", "host",
                                                 "platform") if m.get(k) is not None)
        if desc and desc not in machines:
            machines.append(desc)
    versions = rs[0].get("versions") if rs and isinstance(rs[0].get("versions"), dict) else {}
    devs = list(dict.fromkeys(str(d) for r in rs for d in (r.get("deviations") if isinstance(r.get("deviations"), list)
                                                             else [])))
    items = [("command" + ("s" if len(cmds) > 1 else ""), "".join(f"<pre>{esc(c)}</pre>" for c in cmds)),
             ("code identity", esc(a["identity"]) + (f" (git {esc(', '.join(gits))})" if gits else "")),
             ("machine", "<br>".join(esc(m) for m in machines) or "not recorded"),
             ("versions", esc(", ".join(f"{k} {v}" for k, v in sorted(versions.items()))) or "not recorded"),
             ("seeds", esc(f"sets {sorted(set(a['seeds']))}; trainings {a['train_seeds']}")),
             ("protocol", _fields(t["protocol_dict"])),
             ("method config", _fields(a["config"]) if isinstance(a["config"], dict) and a["config"] else "none"),
             ("deviations", "<ul>" + "".join(f"<li>{esc(d)}</li>" for d in devs) + "</ul>" if devs else "none recorded")]
    links = _set_links(rs, out)
    if links:
        cells = []
        for rel, link, inspect in links:
            name = f'<a href="{esc(link)}">{esc(rel)}</a>' if link else f"{esc(rel)} (not in this folder)"
            more = (f' · <a href="{esc(inspect)}">inspect output</a>' if inspect else
                    f" · <code>python -m condense inspect {esc(shlex.quote(rel))}</code>")
            cells.append(name + more)
        items.append(("set files", "<br>".join(cells)))
    where = sorted({str(r.get("_where", "")).rsplit("/", 1)[-1] for r in rs if r.get("_where")})
    if where:
        items.append(("records", esc(", ".join(where))))
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _fields(d: dict) -> str:
    return "<code>" + "; ".join(f"{esc(k)}={esc(canon(v) if isinstance(v, (dict, list)) else v)}"
                                for k, v in sorted(d.items())) + "</code>"


def table_section(ti: int, tkey: tuple, t: dict, pngs: dict, out: Path | None, data: dict) -> str:
    rows = t["rows"]
    cols = columns(rows)
    best = best_marks(rows, cols)
    title = table_title(tkey, t)
    heading = f"{dataset_label(tkey[0], rows[0]['source'])} · {tkey[1]} · {t['heading']}"
    proto = t["protocol_dict"].get("name", "")
    data["tables"].append({"title": heading, "dataset": tkey[0], "arch": tkey[1], "heading": t["heading"]})
    head = "".join(f'<th scope="col" data-col="{esc(c.id)}" class="{"" if c.compact else "x"}" aria-sort="none">'
                   f'<button type="button">{esc(c.title)}</button></th>' for c in cols)
    body = []
    for i, a in enumerate(rows):
        rid = f"r{len(data['rows'])}"
        xs, ys, full = mean_curve(a["curves"])
        data["rows"].append({"id": rid, "table": ti, "label": cut(a["method_label"]), "ipc": a["ipc"],
                             "accs": [_finite(x) for x in a["accs"]], "mean": a["mean"],
                             "curve": [[_finite(x), _finite(y), bool(f)] for x, y, f in zip(xs, ys, full)]})
        tds = []
        for c in cols:
            text = esc(c.text(a))
            if c.id == "method":
                full_name = f' title="{esc(a["method_label"])}"' if len(a["method_label"]) > len(cut(a["method_label"])) else ""
                text = (f'<button type="button" class="open" aria-expanded="false" aria-controls="p-{rid}" '
                        f'aria-label="provenance of {esc(cut(a["method_label"]))}">▸</button> <span{full_name}>{text}</span> '
                        f'<label class="cmp"><input type="checkbox" data-row="{rid}" aria-label="compare '
                        f'{esc(cut(a["method_label"]))} (IPC {esc(a["ipc"] or "all")})"> compare</label>')
            elif i in best.get(c.id, ()):
                text = f'<strong title="best in this table">{text}</strong>'
            tds.append(f'<td data-k="{_key_attr(c.key(a))}" class="{"" if c.compact else "x"}">{text}</td>')
        attrs = (f'data-dataset="{esc(a["dataset"])}" data-arch="{esc(a["arch"])}" data-protocol="{esc(proto)}" '
                 f'data-ipc="{esc("all" if not a["ipc"] else a["ipc"])}" data-method="{esc(cut(a["method"]))}"')
        body.append(f'<tr class="row" id="{rid}" {attrs}>{"".join(tds)}</tr>'
                    f'<tr class="prov" id="p-{rid}" hidden><td colspan="{len(cols)}">{provenance(a, t, out)}</td></tr>')
    parts = [f'<section class="tbl" data-dataset="{esc(tkey[0])}" data-arch="{esc(tkey[1])}">',
             f"<h2>{esc(heading)}</h2>"]
    if t.get("compares"):
        parts.append(f'<p class="compares">{esc(t["compares"])}</p>')
    if rows[0]["source"]:
        jpeg = " Results on this lossy JPEG copy are not results on the original." if "JPEG" in rows[0]["source"] else ""
        parts.append(f"<p>Source: {esc(rows[0]['source'])}.{esc(jpeg)}</p>")
    parts.append(f'<table class="lb"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
    if t.get("structure"):
        parts.append("<p>Structure only, no model and no set:</p>" + plain_table(STRUCTURE_COLUMNS, structure_cells(t)))
    if t["notes"]:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in dict.fromkeys(t["notes"])) + "</ul>")
    if title in pngs:
        parts.append(_img(pngs[title], f"plots for {title}"))
    return "\n".join(parts) + "</section>"


def plain_table(cols: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="wrap"><table class="plain"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _filters(tables: dict) -> str:
    values: dict[str, set] = {k: set() for k, _ in FILTERS}
    for t in tables.values():
        for a in t["rows"]:
            values["dataset"].add(str(a["dataset"]))
            values["arch"].add(str(a["arch"]))
            values["protocol"].add(str(t["protocol_dict"].get("name", "")))
            values["ipc"].add("all" if not a["ipc"] else str(a["ipc"]))
            values["method"].add(cut(str(a["method"])))   # the rows' data-method holds the same cut name

    def order(v):
        return (0, int(v), "") if v.isdigit() else (1, 0, v)

    out = []
    for key, label in FILTERS:
        opts = "".join(f'<option value="{esc(v)}">{esc(cut(v, 40))}</option>' for v in sorted(values[key], key=order))
        out.append(f'<label>{esc(label)} <select data-filter="{key}"><option value="">all</option>{opts}</select></label>')
    return "".join(out)


def _crossarch_sections(tables: dict, pngs: dict) -> str:
    out = []
    for x in crossarch.cross_arch(tables):
        title = crossarch.title(x)
        out.append(f'<section class="xarch"><h2>{esc(title)}</h2><p>{esc(crossarch.columns_note(x))}</p>')
        out.append(plain_table(["method", *x["archs"]], [[r["label"], *(crossarch.cell(r, a) for a in x["archs"])]
                                                         for r in x["rows"]]))
        if title in pngs:
            out.append(_img(pngs[title], f"heatmap: {title}"))
        out.append("</section>")
    return "\n".join(out)


def html_page(tables: dict, failed: list[dict], pngs: dict[str, bytes], out: Path | None = None) -> str:
    """The leaderboard page for ``tables`` (written into ``out``: set-file links are relative to it)."""
    data: dict = {"tables": [], "rows": [], "t975": T975}
    sections = [table_section(i, k, t, pngs, out, data) for i, (k, t) in enumerate(tables.items())]
    sections.append(_crossarch_sections(tables, pngs))
    sc = score_rows(tables)
    if sc:
        cols = ["dataset", "arch", "method", "ipc", "table", "hlr", "ior", "lrs", "ars"]
        cells = [[cut(str(r[c])) if c not in ("hlr", "ior", "lrs", "ars") else fmt_score(r[c]) for c in cols] for r in sc]
        sections.append("<section><h2>DD-Ranking scores</h2>" + plain_table(cols, cells)
                        + (_img(pngs["DD-Ranking scores"], "DD-Ranking scores as bars") if "DD-Ranking scores" in pngs
                           else "") + "</section>")
    legend = (f"{FULL_MARK} touches the full training set. Rank: 1 + the rows of the same IPC whose 95 % interval "
              "lies wholly above this row's (\"2=\": tied). Bold: the best value of its column (the whole-split "
              "reference apart). n = sets × trainings; TTA includes condense seconds (teachers at their recorded "
              "cost; in brackets without them); n.r. = not reached; a speedup is shown only on matching checkpoint "
              "grids.") + (" " + BELOW_LEGEND if any(a.get("below_node_count") for t in tables.values()
                                                     for a in t["rows"]) else "") + \
        (" " + PUBLISHED_LEGEND if any(a.get("published") for t in tables.values() for a in t["rows"]) else "")
    fails = ""
    if failed:
        items = "".join(f"<li>{esc(r['dataset'])} {esc(cut(str(r['method'])))} ipc={esc(r['ipc'])} seed={esc(r['seed'])}"
                        f": {esc(r.get('error', '?'))}</li>" for r in failed)
        fails = f"<section><h2>Failed cells</h2><ul>{items}</ul></section>"
    nrows = sum(len(t["rows"]) for t in tables.values())
    return TEMPLATE.substitute(style=(HERE / "page.css").read_text(encoding="utf-8"),
                               script=(HERE / "page.js").read_text(encoding="utf-8"),
                               filters=_filters(tables), total=str(nrows), tables="\n".join(sections),
                               legend=esc(legend), failed=fails, data=script_json(data))
