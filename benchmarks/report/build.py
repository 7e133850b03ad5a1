"""One leaderboard from run folders: ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.html`` and
the plots the page embeds."""
from __future__ import annotations

import io
from pathlib import Path

from condense._paths import atomic_write

from .plots import plots
from .records import load_records, load_structure
from .page import html_page
from .render import markdown, write_csv
from .tables import aggregate


def build(dirs, out: Path | None, with_plots: bool = True, clock: str = "wall", all_versions: bool = False) -> str:
    """Write the three leaderboard files into ``out`` (None: write nothing); returns the markdown."""
    ok, failed = load_records(dirs)
    tables = aggregate(ok, clock, all_versions, load_structure(dirs))
    md = markdown(tables, failed, clock)
    if out is None:
        return md
    out = Path(out)
    atomic_write(out / "leaderboard.md", data=md.encode())
    buf = io.StringIO()
    write_csv(tables, buf)
    atomic_write(out / "leaderboard.csv", data=buf.getvalue().encode())
    pngs = plots(tables, clock) if with_plots and tables else {}
    for old in out.glob("plot-*.png"):
        old.unlink()
    for i, png in enumerate(pngs.values()):
        atomic_write(out / f"plot-{i}.png", data=png)
    atomic_write(out / "leaderboard.html", data=html_page(tables, failed, pngs, out).encode())
    return md
