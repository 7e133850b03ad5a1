"""``python -m condense verify``: finished records, or a fresh run of a reference configuration, checked
against the published figures (``condense/references.toml``) and the suite's own committed ones
(``[[expect]]`` tables of ``condense/references/*.toml``), one line per reference and row.

- ``verify --results DIR...`` reads every ``results.jsonl`` under the folders (no training). Published
  references are checked against every row of their cell; a committed figure against the rows of the
  folder it was committed in.
- ``verify CONFIG`` runs the sweep the configuration file describes (``python -m benchmarks.run
  --config CONFIG`` in a child process, into ``--out``) and checks its rows against the file's
  ``[[expect]]`` bands and the published references.
- ``verify --results DIR --freeze`` prints ``[[expect]]`` tables for the rows found: the committed mean,
  std and n a later run must reproduce.

The exit status is 1 when any row lies out of its band (or on an error), so CI can run it.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import jsonl
from .identity import newest_identity
from .references import (NOT_GIVEN, PUBLISHED, Reference, Verdict, all_expectations, judge, load_expectations, load_published,
                         protocol_differences, row_values, same_cell)

PROTOCOL_FIELDS = ("name", "preset", "version", "epochs", "batch_size", "augment", "loss")


@dataclass
class Row:
    """The records of one cell (method, dataset, IPC, architecture, method config) under one protocol,
    measured on one source, in one results file."""

    folder: Path
    method: str
    dataset: str
    ipc: int
    arch: str
    protocol: dict
    config: dict
    source: str
    records: list

    def where(self) -> str:
        return str(self.folder)


def _rel(p: Path) -> Path:
    try:
        return p.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return p.resolve()


def load_rows(dirs) -> list[Row]:
    """Rows from every ``results.jsonl`` in or under the folders (failed and unusable lines skipped),
    each with the records of its newest code identity (:func:`condense.identity.newest_identity`)."""
    files: list[Path] = []
    for d in map(Path, dirs):
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files += sorted(d.rglob("results.jsonl"))
        else:
            raise FileNotFoundError(f"{d}: no such results folder")
    groups: dict[tuple, Row] = {}
    for f in files:
        jsonl.check_regular(f)
        for _, rec in jsonl.read_numbered(f):
            if rec is None or jsonl.malformed(rec) or rec.get("status") != "ok":
                continue
            if (rec.get("run_extra") or {}).get("stopped_early"):
                continue  # stopped at its targets: its accuracy is not final
            p = rec.get("protocol") or {}
            key = (str(f), rec["method"], rec["dataset"], rec["ipc"], rec.get("arch"),
                   json.dumps(p, sort_keys=True, default=str), json.dumps(rec.get("method_config") or {}, sort_keys=True,
                                                                          default=str), rec.get("source", ""))
            if key not in groups:
                groups[key] = Row(_rel(f.parent), rec["method"], rec["dataset"], rec["ipc"], rec.get("arch", ""), p,
                                  rec.get("method_config") or {}, rec.get("source", ""), [])
            groups[key].records.append(rec)
    for row in groups.values():
        row.records = newest_identity(row.records)
    return list(groups.values())


def _matches(ref: Reference, row: Row) -> bool:
    return same_cell(ref, row.method, row.dataset, row.ipc, row.arch, row.config)


def check(rows: list[Row], published: list[Reference], expected: list[Reference],
          by_folder: bool = True) -> list[tuple[Verdict, str]]:
    """(verdict, where) for each reference and each row of its cell; a reference without a row gets one
    "not comparable" line. With ``by_folder``, a committed figure is checked only against the rows of
    the folder it names."""
    out = []
    for ref in [*published, *expected]:
        cands = [r for r in rows if _matches(ref, r)]
        if ref.kind == "suite" and by_folder:
            home = _rel(Path(ref.source["results"]))
            cands = [r for r in cands if r.folder == home]
        if not cands:
            out.append((Verdict("not comparable", ref, why="no record of this cell"), ""))
            continue
        # rows under the reference's protocol first; rows that differ only when none match, with the reason
        exact = [r for r in cands if not protocol_differences(ref, r.protocol)]
        named = [r for r in cands if r.protocol.get("name") == ref.protocol.get("name")]
        cands = exact or named or cands
        for r in cands:
            jpeg = "JPEG" in r.source
            out.append((judge(ref, r.protocol, row_values(r.records, ref), jpeg), r.where()))
    return out


def report(verdicts: list[tuple[Verdict, str]]) -> int:
    for v, where in verdicts:
        print(v.line(where))
    counts = {s: sum(v.status == s for v, _ in verdicts) for s in ("in band", "out of band", "not comparable")}
    print(f"{counts['in band']} in band, {counts['out of band']} out of band, {counts['not comparable']} not comparable")
    return 1 if counts["out of band"] else 0


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if v is None:
        return '"none"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v), ensure_ascii=False)


def freeze(rows: list[Row]) -> str:
    """``[[expect]]`` tables for the rows: each row's mean, std (population) and n as a committed band."""
    out = []
    for r in sorted(rows, key=lambda r: (str(r.folder), r.dataset, r.method, r.ipc, r.arch)):
        accs = [float(x["acc"]) for x in r.records]
        peers = [x for x in rows if x.folder == r.folder and (x.method, x.dataset, x.ipc, x.arch, x.protocol.get("name"))
                 == (r.method, r.dataset, r.ipc, r.arch, r.protocol.get("name"))]
        varying = sorted({k for x in peers for k in {*x.protocol, *r.protocol}
                          if json.dumps(x.protocol.get(k), sort_keys=True) != json.dumps(r.protocol.get(k), sort_keys=True)})
        proto = {k: r.protocol[k] for k in (*PROTOCOL_FIELDS, *varying) if r.protocol.get(k) is not None
                 and isinstance(r.protocol[k], (bool, int, float, str))}
        proto.update({k: "none" for k in varying if r.protocol.get(k) is None})
        same = [x for x in peers if x.protocol == r.protocol]
        cfg = {}
        if len(same) > 1:  # several configurations of one method in a folder: name the fields that differ
            keys = {k for x in same for k in x.config}
            cfg = {k: r.config.get(k) for k in sorted(keys) if len({json.dumps(x.config.get(k), sort_keys=True)
                                                                     for x in same}) > 1}
            cfg = {k: v for k, v in cfg.items() if isinstance(v, (bool, int, float, str, list))}
        key = f"{r.folder}/{r.dataset}/{r.method}/ipc{r.ipc}/{r.arch}/{proto.get('name')}" + \
            "".join(f"/{k}={proto[k]}" for k in varying if k in proto) + \
            "".join(f"/{k}={len(v) if isinstance(v, list) else v}" for k, v in cfg.items())
        lines = ["[[expect]]", f"key = {_toml(key)}", f"method = {_toml(r.method)}", f"dataset = {_toml(r.dataset)}",
                 f"ipc = {r.ipc}", f"arch = {_toml(r.arch)}", f"protocol = {_toml(proto)}"]
        if cfg:
            lines.append(f"config = {_toml(cfg)}")
        # one run has no spread to make a band from: its std is "not given", so a rerun is shown, never checked
        std = _toml(NOT_GIVEN) if len(accs) < 2 else repr(statistics.pstdev(accs))
        lines += [f"mean = {statistics.fmean(accs)!r}", f"std = {std}", f"n = {len(accs)}", f"source = {_toml({'results': str(r.folder), 'command': str(r.folder / 'COMMAND')})}",
                  ""]
        out.append("\n".join(lines))
    return "\n".join(out)


def run_config(config: Path, out: Path, data_root: str | None) -> None:
    """Run the configuration's sweep in a child process (the sweep lives in ``benchmarks``)."""
    cmd = [sys.executable, "-m", "benchmarks.run", "--config", str(config), "--out", str(out)]
    if data_root:
        cmd += ["--data-root", data_root]
    print("running: " + " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd)
    if done.returncode != 0:
        raise ValueError(f"{config}: the sweep exited with status {done.returncode}")


def add_parser(sub) -> None:
    """The ``verify`` subcommand of ``python -m condense``."""
    p = sub.add_parser("verify", help="check records, or a fresh run of a reference configuration, against "
                                      "published and committed bands (exit 1 when out of band)")
    p.add_argument("config", nargs="?", type=Path, default=None,
                   help="a reference configuration (a sweep file with [[expect]] tables), e.g. "
                        "condense/references/dc-random-mnist.toml: run it and check its rows")
    p.add_argument("--results", nargs="+", metavar="DIR", default=None,
                   help="check the records under these folders instead (no training)")
    p.add_argument("--references", default=None, help="a published references file (default: the package's)")
    p.add_argument("--out", default=None, help="CONFIG: the run's folder (default runs/verify/<name>)")
    p.add_argument("--data-root", default=None, help="CONFIG: data root (default $CONDENSE_DATA)")
    p.add_argument("--freeze", action="store_true", help="--results: print [[expect]] tables for the rows found")
    p.set_defaults(fn=main)


def main(args) -> int:
    """The ``verify`` subcommand."""
    if (args.config is None) == (args.results is None):
        raise ValueError("verify: give either a reference configuration or --results DIR")
    if args.freeze and args.config:
        raise ValueError("verify: --freeze reads --results folders")
    refs_path = Path(args.references) if args.references else PUBLISHED
    published = load_published(refs_path)
    if args.config:
        config = Path(args.config)
        expected = load_expectations(config)
        out = Path(args.out) if args.out else Path("runs/verify") / config.stem
        run_config(config, out, args.data_root)
        return report(check(load_rows([out]), published, expected, by_folder=False))
    rows = load_rows(args.results)
    if args.freeze:
        print(freeze(rows), end="")
        return 0
    scanned = [_rel(Path(d)) for d in args.results]
    expected = [e for e in all_expectations() if any(_within(_rel(Path(e.source["results"])), s) for s in scanned)]
    return report(check(rows, published, expected))


def _within(p: Path, folder: Path) -> bool:
    return p == folder or folder in p.parents


__all__ = ["Row", "check", "freeze", "load_rows", "main", "report"]
