"""What a hostile case is: its invocation, its result, and the registry of cases by name."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


CODE_ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ("clean error", "ok", "traceback", "hang", "silent wrong", "memory")
SWEEP = ["-m", "benchmarks.run", "--datasets", "digits", "--methods", "random", "--ipc", "1", "--seeds", "0",
         "--epochs", "2", "--checkpoints", "1", "--no-progress"]


@dataclass
class Invocation:
    argv: list[str]                         # arguments after ``python``
    expect: str = "error"                   # "error" or "ok"
    check: Callable[[], str | None] | None = None  # after the run: None, or what is wrong
    env: dict = field(default_factory=dict)
    readonly: bool = False                  # drop CAP_DAC_OVERRIDE (root) so read-only modes hold
    parallel: int = 1                       # run this many copies at once (all must succeed, or be refused)
    refusal: str | None = None              # a parallel copy may instead fail with this one-line error
    timeout: float = 300.0
    max_rss_mb: float | None = None         # peak resident memory bound for the child
    skip: str | None = None                 # a reason to skip (missing data, no setpriv, ...)


@dataclass
class Result:
    name: str
    outcome: str
    seconds: float
    rss_mb: float | None
    detail: str



CASES: dict[str, Callable[[Path], Invocation]] = {}


def case(name: str):
    def deco(fn):
        CASES[name] = fn
        return fn
    return deco


def _cli(*args) -> list[str]:
    return ["-m", "condense", *map(str, args)]

