"""The crosscheck harness: a temporary copy of a method's official code with named substitutions, and
the comparison of what the official code and ours measure on the same inputs.

Nothing of the official code enters this repository: the user's checkout is copied into a temporary
folder, each :class:`Substitution` is applied there (a named, exact text replacement, printed as it
is made and listed in ``docs/crosscheck.md``), and the copy is deleted afterwards. The checkout's
commit is recorded with every result.

An adapter measures :class:`Probe` s on both sides. A probe is either *exact* (a schedule, a split, a
count: the two values must be equal) or *statistical* (per-seed scores: the two means must agree
within their 95 % intervals, by Welch's test at the 1 % level and beyond ``tolerance`` points). A
probe that fails is a deviation, named in the table.
"""
from __future__ import annotations

import math
import shutil
import statistics
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from scipy import stats


@dataclass(frozen=True)
class Substitution:
    """Replace ``old`` by ``new`` in ``file`` of the official copy, exactly ``count`` times (0: every one)."""

    name: str
    file: str
    old: str
    new: str
    why: str
    count: int = 1


@dataclass
class Probe:
    """One quantity measured by the official code and by ours."""

    name: str
    official: object
    ours: object
    kind: str = "exact"           # exact | stat
    tolerance: float = 0.0        # stat: a mean difference within this many points always agrees
    note: str = ""
    verdict: str = field(default="", init=False)
    detail: str = field(default="", init=False)


class CrosscheckError(RuntimeError):
    """The official checkout cannot be used (missing, or a substitution no longer applies)."""


def official_commit(root: Path) -> str:
    """The checkout's commit (``git rev-parse HEAD``), or ``unknown (not a git checkout)``."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown (git unavailable)"
    return out.stdout.strip() if out.returncode == 0 else "unknown (not a git checkout)"


@contextmanager
def patched_copy(root: Path, substitutions, say=print):
    """A temporary copy of ``root`` with every substitution applied (each printed); removed on exit."""
    root = Path(root)
    if not root.is_dir():
        raise CrosscheckError(f"{root}: no such folder (the official checkout to crosscheck against)")
    tmp = Path(tempfile.mkdtemp(prefix="crosscheck-"))
    try:
        copy = tmp / root.name
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".git"), symlinks=True)
        for s in substitutions:
            apply(copy, s)
            say(f"substitution {s.name}: {s.file}: {s.why}")
        yield copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def apply(copy: Path, s: Substitution) -> None:
    path = copy / s.file
    if not path.is_file():
        raise CrosscheckError(f"substitution {s.name}: {s.file} is not in the official checkout")
    text = path.read_text(encoding="utf-8")
    found = text.count(s.old)
    if found == 0 or (s.count and found != s.count):
        raise CrosscheckError(f"substitution {s.name}: {s.file} holds the text to replace {found} time(s), expected "
                              f"{s.count or 'at least 1'} (another version of the official code?)")
    path.write_text(text.replace(s.old, s.new), encoding="utf-8")


def _summary(xs) -> str:
    xs = list(xs)
    return f"{statistics.fmean(xs):.2f} ± {statistics.pstdev(xs):.2f} (n={len(xs)})" if xs else "—"


def judge(p: Probe) -> Probe:
    """Set ``p.verdict`` (``agrees`` / ``differs``) and ``p.detail``."""
    if p.kind == "exact":
        same = p.official == p.ours
        p.verdict, p.detail = ("agrees", "equal") if same else ("differs", "not equal")
        return p
    a, b = [float(x) for x in p.official], [float(x) for x in p.ours]
    diff = statistics.fmean(b) - statistics.fmean(a)
    if len(a) > 1 and len(b) > 1 and (statistics.pstdev(a) > 0 or statistics.pstdev(b) > 0):
        pval = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        pval = 1.0 if math.isnan(pval) else pval
        shown = f"Welch p = {pval:.3g}"
    else:   # no spread to test against: the tolerance alone decides
        pval, shown = (1.0 if abs(diff) <= 1e-9 else 0.0), "no spread on either side"
    differs = pval < 0.01 and abs(diff) > p.tolerance
    p.verdict = "differs" if differs else "agrees"
    p.detail = f"ours − official = {diff:+.2f}, {shown}"
    return p


def table(probes: list[Probe]) -> str:
    """The side-by-side table (Markdown)."""
    lines = ["| probe | official | ours | verdict | detail |", "|---|---|---|---|---|"]
    for p in probes:
        show = (lambda v: _summary(v)) if p.kind == "stat" else (lambda v: str(v))
        lines.append(f"| {p.name} | {show(p.official)} | {show(p.ours)} | **{p.verdict}** | {p.detail}"
                     + (f"; {p.note}" if p.note else "") + " |")
    return "\n".join(lines)


def deviations(probes: list[Probe]) -> list[str]:
    return [p.name for p in probes if p.verdict == "differs"]
