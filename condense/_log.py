"""One-line notes on stderr: what the suite did on its own (rebuilt a cache, skipped a bad line)."""
from __future__ import annotations

import sys


def note(msg: str) -> None:
    print(f"note: {msg}", file=sys.stderr, flush=True)
