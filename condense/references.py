"""Published results and the suite's own committed figures, each with the band a comparable run must
fall in (DESIGN §7).

A reference names what was measured -- method, dataset, IPC, student architecture, the protocol as
precisely as the suite's protocols can say it -- and the figure: mean, std, n, and its source (the
paper, table and arXiv id or venue; or, for the suite's own figures, the results folder). A row of
records is compared with a reference only when method, dataset, IPC and architecture agree and every
protocol field the reference names equals the row's; otherwise the pair is "not comparable" and the
reason is printed, never a silent comparison. A reference whose paper protocol the suite only
approximates says how (``approximates``): its rows are labelled "protocol differs: …" and not
checked.

The band (DESIGN §7): ``|Δ| ≤ 2·√(s_ref² + s_ours²)``, or the paper's own ``tolerance`` where it
states one. Published references live in ``condense/references.toml``; the suite's own, with the
sweep that reproduces them, in ``condense/references/*.toml`` as ``[[expect]]`` tables.
"""
from __future__ import annotations

import difflib
import math
import re
import statistics
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
PUBLISHED = HERE / "references.toml"
CONFIGS = HERE / "references"

REQUIRED = ("key", "method", "dataset", "ipc", "arch", "protocol", "mean", "std", "n", "source")
OPTIONAL = ("metric", "aggregate", "tolerance", "approximates", "paper_protocol", "second_hand", "note", "config")
NOT_GIVEN = "not given"   # a std or n the source does not quote: shown, never band-checked
METRICS = ("acc", "roc-auc")
AGGREGATES = ("all", "paper-top5-of-10")
SOURCE_KEYS = {"published": ("paper", "table", "id"), "suite": ("results", "command")}


class ReferenceError(ValueError):
    """A bad references file: one line naming the file, the line and the key."""


@dataclass(frozen=True)
class Reference:
    """One published or committed figure and how it was measured (see the module docstring)."""

    key: str
    method: str
    dataset: str
    ipc: int
    arch: str
    protocol: dict
    mean: float
    std: float | None                # None: the source quotes none ("not given")
    n: int | None
    source: dict
    kind: str = "published"          # published | suite
    metric: str = "acc"              # acc | roc-auc (the run's ROC-AUC, in %)
    aggregate: str = "all"           # all | paper-top5-of-10 (Mirage's report: 5 best of 10 runs by val ROC-AUC)
    tolerance: float | None = None   # the paper's own band, where it states one
    approximates: str | None = None  # how the suite's nearest protocol differs from the paper's
    paper_protocol: str | None = None
    second_hand: bool = False        # the figure is quoted from another text, not checked against the paper
    note: str | None = None
    config: dict | None = None       # method config fields a row must share (RS2's fraction, a teacher pool)
    where: str = field(default="", compare=False)

    def cite(self) -> str:
        if self.kind == "suite":
            return f"committed in {self.source['results']}"
        s = self.source
        return f"{s['paper']}, {s['table']}, {s['id']}" + (" (second-hand)" if self.second_hand else "")


# ----------------------------------------------------------------------------- reading


def _line_of(text: str, header: str, index: int, key: str | None) -> int | None:
    """The line of ``key`` inside the ``index``-th ``[[header]]`` table (or of the header itself)."""
    starts = [i for i, ln in enumerate(text.splitlines()) if ln.strip() == f"[[{header}]]"]
    if index >= len(starts):
        return None
    lines = text.splitlines()
    end = starts[index + 1] if index + 1 < len(starts) else len(lines)
    if key is not None:
        pat = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(starts[index], end):
            if pat.match(lines[i]):
                return i + 1
    return starts[index] + 1


def _fail(path, text, header, index, key, msg) -> ReferenceError:
    line = _line_of(text, header, index, key)
    at = f"{path}:{line}" if line else f"{path}"
    return ReferenceError(f"{at}: [[{header}]] {index + 1}: {msg}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse(entry: dict, kind: str, path, text: str, header: str, index: int) -> Reference:
    def fail(key, msg):
        return _fail(path, text, header, index, key, msg)

    if not isinstance(entry, dict):
        raise fail(None, "not a table")
    known = REQUIRED + OPTIONAL
    for k in entry:
        if k not in known:
            near = difflib.get_close_matches(k, known, n=1)
            raise fail(k, f"unknown key {k!r}" + (f" (did you mean {near[0]!r}?)" if near else
                                                  f" (known: {', '.join(known)})"))
    for k in REQUIRED:
        if k not in entry:
            raise fail(None, f"missing key {k!r} (every entry needs {', '.join(REQUIRED)})")
    for k in ("key", "method", "dataset", "arch"):
        if not isinstance(entry[k], str) or not entry[k]:
            raise fail(k, f"{k} must be a non-empty string, got {entry[k]!r}")
    if not isinstance(entry["ipc"], int) or isinstance(entry["ipc"], bool) or entry["ipc"] < 0:
        raise fail("ipc", f"ipc must be an integer >= 0, got {entry['ipc']!r}")
    if not _number(entry["mean"]):
        raise fail("mean", f"mean must be a finite number, got {entry['mean']!r}")
    if entry["std"] != NOT_GIVEN and (not _number(entry["std"]) or entry["std"] < 0):
        raise fail("std", f"std must be a finite number >= 0 or {NOT_GIVEN!r}, got {entry['std']!r}")
    n = entry["n"]
    if n != NOT_GIVEN and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise fail("n", f"n must be an integer >= 1 or {NOT_GIVEN!r}, got {n!r}")
    p = entry["protocol"]
    if not isinstance(p, dict) or "name" not in p:
        raise fail("protocol", "protocol must be a table with at least name (e.g. { name = \"dc\", preset = \"quick\" })")
    src = entry["source"]
    need = SOURCE_KEYS[kind]
    if not isinstance(src, dict) or any(not isinstance(src.get(k), str) or not src.get(k) for k in need[:1 + (kind == "published") * 2]):
        raise fail("source", f"source must be a table with {', '.join(need)} (strings)")
    opt = {k: entry[k] for k in OPTIONAL if k in entry}
    if opt.get("metric", "acc") not in METRICS:
        raise fail("metric", f"metric must be one of {', '.join(METRICS)}, got {opt['metric']!r}")
    if opt.get("aggregate", "all") not in AGGREGATES:
        raise fail("aggregate", f"aggregate must be one of {', '.join(AGGREGATES)}, got {opt['aggregate']!r}")
    if "tolerance" in opt and (not _number(opt["tolerance"]) or opt["tolerance"] <= 0):
        raise fail("tolerance", f"tolerance must be a number > 0, got {opt['tolerance']!r}")
    for k in ("approximates", "paper_protocol", "note"):
        if k in opt and not isinstance(opt[k], str):
            raise fail(k, f"{k} must be a string")
    if "config" in opt and not isinstance(opt["config"], dict):
        raise fail("config", "config must be a table of method config fields")
    if "second_hand" in opt and not isinstance(opt["second_hand"], bool):
        raise fail("second_hand", "second_hand must be true or false")
    return Reference(key=entry["key"], method=entry["method"], dataset=entry["dataset"], ipc=entry["ipc"],
                     arch=entry["arch"], protocol=dict(p), mean=float(entry["mean"]),
                     std=None if entry["std"] == NOT_GIVEN else float(entry["std"]), n=None if n == NOT_GIVEN else n, source=dict(src), kind=kind, where=f"{path}", **opt)


def _read(path: Path) -> tuple[dict, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReferenceError(f"{path}: no such references file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReferenceError(f"{path}: cannot read the references file ({e})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        raise ReferenceError(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None


def _entries(doc: dict, text: str, path, header: str, kind: str) -> list[Reference]:
    items = doc.get(header, [])
    if not isinstance(items, list):
        raise ReferenceError(f"{path}: {header!r} must be [[{header}]] tables")
    out = [_parse(e, kind, path, text, header, i) for i, e in enumerate(items)]
    seen: dict[str, int] = {}
    for i, r in enumerate(out):
        if r.key in seen:
            raise _fail(path, text, header, i, "key", f"duplicate key {r.key!r} (also entry {seen[r.key] + 1})")
        seen[r.key] = i
    return out


def load_published(path: Path = PUBLISHED) -> list[Reference]:
    """The ``[[reference]]`` tables of a references file; any other top-level key is an error."""
    doc, text = _read(path)
    extra = [k for k in doc if k != "reference"]
    if extra:
        raise ReferenceError(f"{path}: unknown top-level key {extra[0]!r} (a references file holds [[reference]] tables)")
    return _entries(doc, text, path, "reference", "published")


def load_expectations(path: Path) -> list[Reference]:
    """The ``[[expect]]`` tables of a reference configuration (the suite's own committed figures)."""
    doc, text = _read(path)
    return _entries(doc, text, path, "expect", "suite")


def all_expectations(folder: Path = CONFIGS) -> list[Reference]:
    return [r for p in sorted(Path(folder).glob("*.toml")) for r in load_expectations(p)]


# ----------------------------------------------------------------------------- comparing


def _same(a, b) -> bool:
    norm = (lambda v: None if v in (None, "none") else v)
    a, b = norm(a), norm(b)
    if _number(a) and _number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


# Protocol fields added after records were first written, at the value those records trained with (the
# defaults of condense.protocols.Protocol; a test keeps the two equal). Kept here so that the report
# reads references without importing torch.
LATER_FIELDS = {"precision": "fp32", "accumulate": 1, "decay": "all", "select": "val-acc", "check_initial": False,
                "drop_last": False}


def _field(protocol: dict, k: str):
    """A record's protocol field; one that older records do not carry reads as its default."""
    return protocol[k] if k in protocol else LATER_FIELDS.get(k)


def protocol_differences(ref: Reference, protocol: dict) -> list[str]:
    """Each protocol field the reference names and the row does not share: ``field ref vs row``."""
    return [f"{k} {v!r} vs {_field(protocol, k)!r}" for k, v in ref.protocol.items()
            if not _same(v, _field(protocol, k))]


def same_cell(ref: Reference, method: str, dataset: str, ipc: int, arch: str, config: dict | None = None) -> bool:
    """The reference's cell: method, dataset, IPC, architecture, and the method config fields it names."""
    if (ref.method, ref.dataset, ref.ipc, ref.arch) != (method, dataset, ipc, arch):
        return False
    return all(_same(v, (config or {}).get(k)) for k, v in (ref.config or {}).items())


def band(ref: Reference, std_ours: float) -> float | None:
    """Half-width of the band: the paper's tolerance, else 2·√(s_ref² + s_ours²); None when the source
    quotes no std and no tolerance."""
    if ref.tolerance is not None:
        return ref.tolerance
    return None if ref.std is None else 2 * math.sqrt(ref.std ** 2 + std_ours ** 2)


def _pm(mean: float, std: float | None, digits: int = 2) -> str:
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


@dataclass(frozen=True)
class Verdict:
    """How one row compares with one reference."""

    status: str        # in band | out of band | not comparable
    ref: Reference
    mean: float | None = None
    std: float | None = None
    n: int = 0
    delta: float | None = None
    band: float | None = None
    why: str = ""

    def line(self, where: str = "") -> str:
        """One line of ``python -m condense verify``."""
        r = self.ref
        n = "n not given" if r.n is None else f"n={r.n}"
        pub = f"{'published' if r.kind == 'published' else 'committed'} {_pm(r.mean, r.std)} ({n}; {r.cite()})"
        head = f"{self.status.upper():<15} {r.key}"
        tail = f" [{where}]" if where else ""
        if self.mean is None:
            return f"{head}: {pub}; {self.why}{tail}"
        ours = f"ours {_pm(self.mean, self.std)} (n={self.n}) vs {pub}: Δ {self.delta:+.2f}"
        if self.band is None:
            return f"{head}: {ours}; {self.why}{tail}"
        return f"{head}: {ours}, band ±{self.band:.2f}" + (f"; {self.why}" if self.why else "") + tail

    def mark(self) -> str:
        """The leaderboard cell: "published: m ± s — in band (Δ, band)", or why the row is not compared."""
        r = self.ref
        base = f"{'published' if r.kind == 'published' else 'committed'}: {_pm(r.mean, r.std, 1)}"
        if self.status == "not comparable":
            return f"{base} — {self.why}"
        return f"{base} — {self.status} (Δ {self.delta:+.1f}, band ±{self.band:.1f})"


def row_values(records: list[dict], ref: Reference) -> list[float] | None:
    """The per-run figures a reference compares: test accuracy, or ROC-AUC (Mirage's report where the
    reference uses it); None when the records lack them."""
    if ref.aggregate == "paper-top5-of-10":
        agg = paper_aggregate(records)
        return None if agg is None else agg["aucs"]
    if ref.metric == "roc-auc":
        vals = [(r.get("run_extra") or {}).get("roc_auc") for r in records]
        return None if any(v is None for v in vals) else [float(v) for v in vals]
    return [float(r["acc"]) for r in records]


def judge(ref: Reference, protocol: dict, values: list[float] | None, jpeg: bool = False) -> Verdict:
    """Compare one row (the per-run figures of one cell under one protocol) with a reference of the same
    cell: in band, out of band, or not comparable (why)."""
    diffs = protocol_differences(ref, protocol)
    if diffs:
        return Verdict("not comparable", ref, why="protocol differs: " + "; ".join(diffs))
    if ref.approximates:
        return Verdict("not comparable", ref, why="protocol differs: " + ref.approximates)
    if not values:
        return Verdict("not comparable", ref, why=f"the records carry no {ref.metric} for aggregate {ref.aggregate!r}")
    mean = statistics.fmean(values)
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    delta, b = mean - ref.mean, band(ref, std)
    if b is None:
        return Verdict("not comparable", ref, mean, std, len(values), delta,
                       why="the source quotes no std, so there is no band")
    notes = "on the JPEG copy" if jpeg and ref.kind == "published" else ""
    return Verdict("in band" if abs(delta) <= b + 1e-9 else "out of band", ref, mean, std, len(values), delta, b, notes)


def best_verdict(verdicts: list[Verdict]) -> Verdict | None:
    """Of a row's verdicts, a comparison before a "not comparable" (the first of each kind)."""
    compared = [v for v in verdicts if v.status != "not comparable"]
    return (compared or verdicts or [None])[0]


def cell_verdict(refs: list[Reference], cell: tuple, config: dict | None, protocol: dict, values_of,
                 jpeg: bool = False) -> Verdict | None:
    """One row against every reference of its ``cell`` (method, dataset, IPC, arch): the
    :func:`best_verdict`, or None without a reference. ``values_of(ref)``: the row's per-run figures in
    that reference's metric."""
    match = [r for r in refs if same_cell(r, *cell, config)]
    return best_verdict([judge(r, protocol, values_of(r), jpeg) for r in match])


# ----------------------------------------------------------------------------- Mirage's report


PAPER_RUNS, PAPER_KEPT = 10, 5


def best_val_auc_point(curve: list[dict]) -> dict | None:
    """The checkpoint with the best validation ROC-AUC, ties to the later one (the official Mirage
    scripts keep a test score whenever ``best_val <= val``); None without validation ROC-AUC."""
    pts = [c for c in curve if c.get("val_auc") is not None and c.get("auc") is not None]
    return max(reversed(pts), key=lambda c: c["val_auc"]) if pts else None


def paper_aggregate(rs: list[dict]) -> dict | None:
    """The official Mirage scripts' report (§ Experiments; ``graph-*-finalize-*.py``): of the first 10
    runs, each at its best-validation-ROC-AUC checkpoint, the 5 with the highest validation ROC-AUC;
    mean and (population) std of their test ROC-AUC. It selects on validation only, yet keeps the luckiest
    half of the runs, so it is shown apart and never replaces the mean over all runs. None when a row
    has fewer than 10 runs or its curves lack validation ROC-AUC."""
    if len(rs) < PAPER_RUNS:
        return None
    rs = sorted(rs, key=lambda r: (r["seed"], r.get("train_seed", r["seed"])))
    pts = [best_val_auc_point(r.get("curve") or []) for r in rs[:PAPER_RUNS]]
    if any(p is None for p in pts):
        return None
    order = sorted(range(PAPER_RUNS), key=lambda i: -pts[i]["val_auc"])[:PAPER_KEPT]  # stable: earlier run on ties
    kept = [pts[i] for i in order]
    return {"runs": PAPER_RUNS, "kept": PAPER_KEPT, "seeds": [(rs[i]["seed"], rs[i].get("train_seed", rs[i]["seed"])) for i in order],
            "aucs": [p["auc"] for p in kept],
            "auc": statistics.fmean(p["auc"] for p in kept), "auc_std": statistics.pstdev([p["auc"] for p in kept]),
            "acc": statistics.fmean(p["acc"] for p in kept), "acc_std": statistics.pstdev([p["acc"] for p in kept]),
            "val_auc": statistics.fmean(p["val_auc"] for p in kept)}
