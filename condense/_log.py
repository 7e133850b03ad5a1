"""One-line notes on stderr: what the suite did on its own (rebuilt a cache, skipped a bad line)."""
from __future__ import annotations

import sys


def note(msg: str) -> None:
    print(f"note: {msg}", file=sys.stderr, flush=True)


def say(msg: str) -> None:
    """A line of progress or a skip, on stderr as it happens."""
    print(msg, file=sys.stderr, flush=True)


def one_line(e: BaseException) -> str:
    """An exception as one line (the one helper for it): an OS error names its file."""
    if isinstance(e, OSError) and e.strerror and getattr(e, "filename", None) and not str(e).startswith(str(e.filename)):
        return f"{e.filename}: {e.strerror}"
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
