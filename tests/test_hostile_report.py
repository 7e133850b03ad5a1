"""Hostile records, third pass: payloads in every string a record carries stay inert in Markdown and
CSV (and the page), records whose accuracy is not a number are skipped like unparsable lines, and an
over-long name is cut in tables and plots, whole in the page's title attribute."""
from __future__ import annotations

import csv
import io
import json
import math

from benchmarks.report import build
from benchmarks.report.render import NAME_MAX

from .test_fairness import _rec

SCRIPT = "<script>alert(1)</script>"
FORMULAS = ["=cmd|' /C calc'!A0", "+HYPERLINK(\"http://x\",\"y\")", "@SUM(1+1)", "-2+3+cmd|' /C calc'!A0"]


def _write(folder, records) -> None:
    folder.mkdir()
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_payloads_in_records_stay_inert_in_markdown_csv_and_the_page(tmp_path, capsys):
    long_name = "L" * 200_000
    names = [SCRIPT + "|x\n# injected heading", "<img src=x onerror=alert(1)>", "a\\|b", "nul\x00byte",
             long_name, *FORMULAS]
    recs = [_rec(method=m, seed=i, acc=40.0 + i) for i, m in enumerate(names)]
    recs[0]["dataset"] = "toy|evil\n## injected"
    recs += [_rec(method="random", seed=0, acc=float("nan"), key="nan-record"),
             _rec(method="random", seed=1, acc=float("inf"), key="inf-record"),
             _rec(method="random", seed=2, acc=55.0)]
    _write(tmp_path / "run", recs)
    md = build([tmp_path / "run"], tmp_path / "run", with_plots=True)
    err = capsys.readouterr().err
    assert "skipped 2 unusable line(s)" in err and "not a finite number" in err

    # Markdown: no raw tag, no injected heading, every table row has the header's number of cells
    assert "<script" not in md and "<img" not in md and "\x00" not in md
    assert not any(line.startswith(("# injected", "## injected")) for line in md.splitlines())
    for table in md.split("\n\n"):
        rows = [line for line in table.splitlines() if line.startswith("| ")]
        if rows:
            width = {len(line.replace("\\|", "").split("|")) for line in rows}
            assert len(width) == 1, table[:300]
    assert "nan ±" not in md and "inf ±" not in md
    assert long_name not in md and ("L" * (NAME_MAX - 1) + "…") in md

    # CSV: read back, formulas neutralised, numbers untouched
    rows = list(csv.DictReader(io.StringIO((tmp_path / "run" / "leaderboard.csv").read_text())))
    methods = {r["method"] for r in rows}
    for f in FORMULAS:
        assert "'" + f in methods and f not in methods
    assert all(not r["method"].startswith(("=", "+", "-", "@")) for r in rows)
    assert all(math.isfinite(float(r["mean"])) for r in rows)

    # the page: escaped, the long name whole in a title attribute and in the row's provenance (its command)
    # only; the script's data carries the cut name, and no payload reaches it unescaped
    page = (tmp_path / "run" / "leaderboard.html").read_text()
    assert SCRIPT not in page and "&lt;script&gt;" in page
    assert f'title="{long_name}' in page and page.count(long_name) == 2   # (its label may add a code tag)
    data = page.split('<script type="application/json" id="lb-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "&" not in data
    assert long_name not in data and SCRIPT not in data
