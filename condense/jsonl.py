"""``results.jsonl``: one complete, self-describing JSON record per line, appended atomically.

A record is written with one ``write`` on an ``O_APPEND`` descriptor and fsynced, so finished
lines are never rewritten. A run killed mid-write can leave at most one partial last line; readers
skip it and :func:`repair` trims it before the next append. Repair loses nothing that parses: a
complete last record that lacks only its newline gets the newline back.

A record's ``curve`` (one point per test checkpoint) is stored by column, with accuracies rounded to
0.01 % and seconds to 4 significant digits: a 50-point curve takes about 2 kB instead of 10 kB.
:func:`read` gives it back as the list of points the evaluator made. ``python -m condense.jsonl
compact FILE...`` rewrites older files (one dict per point, full precision) in the compact form.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import stat
import sys
from pathlib import Path

from condense._paths import atomic_write


def _round(key: str, value):
    if not isinstance(value, float):
        return value
    if "acc" in key or "auc" in key:
        return round(value, 2)
    return float(f"{value:.4g}")


def pack_curve(curve: list[dict]) -> dict[str, list]:
    """A list of checkpoint dicts as columns (missing fields are None), rounded for storage."""
    keys = sorted({k for point in curve for k in point})
    return {k: [_round(k, point.get(k)) for point in curve] for k in keys}


def unpack_curve(columns: dict[str, list]) -> list[dict]:
    """The inverse of :func:`pack_curve`: one dict per checkpoint, None fields dropped."""
    n = len(next(iter(columns.values()), []))
    return [{k: v[i] for k, v in columns.items() if v[i] is not None} for i in range(n)]


def _encode(record: dict) -> bytes:
    if isinstance(record.get("curve"), list):
        record = {**record, "curve": pack_curve(record["curve"])}
    return (json.dumps(record, sort_keys=True, allow_nan=False, separators=(",", ":")) + "\n").encode()


def check_regular(path: Path) -> None:
    """Refuse, in one line, a results file that is a symbolic link, a FIFO, a device or a folder: the
    suite reads and writes only regular files, never through a link (a FIFO would block for ever)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path}: is a symbolic link; results are read and written only as a regular file "
                         "(replace the link by the file)")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: is not a regular file (a FIFO, device, socket or folder); results are a "
                         "regular file")


def repair(path: Path) -> int:
    """End the file at a record boundary; returns the bytes set aside.

    A last line that parses as a record and lacks only its newline gets the newline; a last line
    that does not parse (a write cut by a kill) is moved to ``<file>.partial`` (appended there, never
    deleted). Nothing before the last newline is touched. A link or special file is refused."""
    check_regular(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb+") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        tail = data[keep:]
        if not tail:
            return 0
        if decode(tail) is not None:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
            removed = 0
        else:
            partial = path.with_name(path.name + ".partial")
            check_regular(partial)
            with open(partial, "ab") as aside:
                aside.write(tail + b"\n")
                aside.flush()
                os.fsync(aside.fileno())
            f.truncate(keep)
            removed = len(tail)
        f.flush()
        os.fsync(f.fileno())
    return removed


def append(path: Path, record: dict) -> None:
    line = _encode(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def decode(raw: bytes) -> dict | None:
    """One line as a record with its curve as points; None for a partial or unreadable line (a
    line cut by a kill never parses as a whole JSON object)."""
    try:
        rec = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
        return None
    if isinstance(rec.get("curve"), dict):
        rec["curve"] = unpack_curve(rec["curve"])
    return rec


RESULT_FIELDS = {"key": str, "status": str, "dataset": str, "method": str, "ipc": int, "seed": int,
                 "arch": str, "protocol": dict}


OPTIONAL_DICTS = ("code", "plan", "run_extra", "set_extra", "storage_bytes", "method_traits", "machine", "versions")


def malformed(rec: dict) -> str | None:
    """Why a parsed line is not a usable result record (a missing or mistyped field), or None."""
    for k, tp in RESULT_FIELDS.items():
        if not isinstance(rec.get(k), tp) or isinstance(rec.get(k), bool):
            return f"field {k!r} is missing or not {tp.__name__}"
    for k in OPTIONAL_DICTS:   # read as tables of their own (the code identity, the plan, the run's extras)
        if rec.get(k) is not None and not isinstance(rec[k], dict):
            return f"field {k!r} is not an object"
    if rec["status"] == "ok" and (not isinstance(rec.get("acc"), (int, float)) or isinstance(rec["acc"], bool)):
        return "an ok record without a numeric 'acc'"
    if rec["status"] == "ok" and not math.isfinite(rec["acc"]):
        return f"an ok record whose 'acc' is {rec['acc']} (not a finite number)"
    return None


def read_numbered(path: Path):
    """(line number, record or None) for every line of a results file."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            yield i, decode(raw)


def read(path: Path) -> tuple[list[dict], int]:
    """Records of a results file, and the count of unreadable lines skipped."""
    records, bad = [], 0
    if not path.exists():
        return records, bad
    with open(path, "rb") as f:
        for raw in f:
            rec = decode(raw)
            if rec is None:
                bad += 1
            else:
                records.append(rec)
    return records, bad


def compact(path: Path) -> tuple[int, int]:
    """Rewrite a results file in the compact form, atomically; returns (bytes before, bytes after).

    Unreadable lines are kept as they were, so nothing is lost. Run it when no sweep is appending to
    the file: a line appended during the rewrite would be lost."""
    path = Path(path)
    before = path.stat().st_size
    out = bytearray()
    with open(path, "rb") as f:
        for raw in f:
            rec = decode(raw)
            out += raw if rec is None else _encode(rec)
    atomic_write(path, data=bytes(out))
    return before, len(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m condense.jsonl", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compact", help="rewrite results files with compact curves")
    c.add_argument("files", type=Path, nargs="+")
    args = ap.parse_args(argv)
    for f in args.files:
        if not f.is_file():
            print(f"error: {f}: no such results file", file=sys.stderr)
            return 2
        before, after = compact(f)
        print(f"{f}: {before:,} -> {after:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
