"""``results.jsonl``: one complete, self-describing JSON record per line, appended atomically.

A record is written with one ``write`` on an ``O_APPEND`` descriptor and fsynced, so finished
lines are never rewritten. A run killed mid-write can leave at most one partial last line; readers
skip it and :func:`repair` trims it before the next append.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def repair(path: Path) -> int:
    """Trim a partial last line (no trailing newline). Returns the bytes removed."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
        return size - keep


def append(path: Path, record: dict) -> None:
    line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> tuple[list[dict], int]:
    """Records of a results file, and the count of unreadable lines skipped."""
    records, bad = [], 0
    if not path.exists():
        return records, bad
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                bad += 1  # a partial last line from a killed run
                continue
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                bad += 1
                continue
            if isinstance(rec, dict) and "key" in rec:
                records.append(rec)
            else:
                bad += 1
    return records, bad
