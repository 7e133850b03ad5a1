"""The leaderboard page: its column model (compact and long columns, ranks with ties, best values), its
plots (log ticks, Pareto fronts, which panels), its provenance and escaping, its size on the main job,
and the page itself driven in headless Chromium (sort, filter, provenance, compare, keyboard, width)."""
from __future__ import annotations

import json
import re
import os
import shlex
import shutil
from pathlib import Path

import pytest

from benchmarks.report import build
from benchmarks.report.layout import add_ranks, best_marks, columns
from benchmarks.report.page import script_json
from benchmarks.report.plots import log_ticks, panels, pareto_front, set_log_axis
from benchmarks.report.tables import aggregate

from .test_fairness import _rec

ROOT = Path(__file__).resolve().parents[1]


def _row(mean, ci, ipc=10, role="method", n=3, **kw):
    return {"mean": mean, "ci95": ci, "ipc": ipc, "traits": {"role": role}, "n": n, **kw}


def test_ranks_tie_where_intervals_overlap_and_each_ipc_ranks_apart():
    rows = [_row(70, 1), _row(69, 1.5), _row(60, 1), _row(50, None, n=1), _row(40, 5, ipc=1),
            _row(90, 0.1, role="reference")]
    add_ranks(rows)
    assert [a["rank_text"] for a in rows] == ["1=", "1=", "3", "4", "1", "1"]
    # a wrong rule (rank by order) would give 70 and 69 different ranks although their intervals overlap


def test_best_values_are_marked_per_column_without_the_reference_and_not_where_all_tie():
    rows = aggregate([_rec("random", seed=s, acc=a) for s, a in enumerate((50.0, 52.0))]
                     + [_rec("herding", seed=s, acc=a) for s, a in enumerate((60.0, 61.0))]
                     + [_rec("full", seed=s, acc=a) for s, a in enumerate((95.0, 96.0))])
    (t,) = rows.values()
    rows = t["rows"]
    cols = columns(rows)
    best = best_marks(rows, cols)
    by = {a["method"]: i for i, a in enumerate(rows)}
    assert best["acc"] == {by["herding"]}          # not full's 95.5: the reference never counts
    assert "storage" not in best                    # every row stores 1,000 B: no best
    compact = [c.title for c in cols if c.compact]
    assert compact[:4] == ["rank", "IPC", "method", "acc % ± 95 % CI"] and "TTA@60% s" in compact
    assert "acc % mean ± std" in [c.title for c in cols if not c.compact]


def test_log_ticks_label_at_least_three_values_inside_the_axis_for_narrow_and_wide_ranges():
    for lo, hi in ((2000, 2400), (1.1e5, 3.3e5), (0.3, 40), (1, 10 ** 7), (17, 19), (0.38, 0.855), (1.001, 1.002)):
        ticks = log_ticks(lo, hi)
        assert len(ticks) >= 3 and all(lo <= t <= hi for t in ticks), (lo, hi, ticks)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    set_log_axis(ax, [120_000, 150_000, 300_000], lambda v: f"{v / 1000:g} kB")
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and lo <= t._x <= hi]
    plt.close(fig)
    assert len(labels) >= 3 and len(set(labels)) == len(labels)


def test_pareto_front_keeps_only_points_no_cheaper_point_beats():
    pts = [(1, 50), (2, 45), (3, 60), (4, 60), (10, 70), (5, 65), (6, 64)]
    assert pareto_front(pts) == [(1, 50), (3, 60), (5, 65), (10, 70)]


def test_accuracy_against_ipc_is_drawn_only_with_two_ipcs():
    assert panels([{"ipc": 10}, {"ipc": 10}, {"ipc": 0}]) == ["bytes", "time", "curves"]
    assert panels([{"ipc": 1}, {"ipc": 10}])[0] == "ipc"


def test_script_data_cannot_close_its_element():
    text = script_json({"label": "</script><script>alert(1)</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text)["label"].startswith("</script>")


def test_a_record_keeps_the_command_that_reruns_its_cell():
    from benchmarks.sweep.spec import SweepSpec, cell_command, parse_args

    spec = parse_args(["--datasets", "digits", "mnist", "--methods", "random", "herding", "--ipc", "1", "10",
                       "--precision", "bf16", "--checkpoints", "5", "--set", "herding.train_epochs=3",
                       "--set", "dm.width=32", "--out", "elsewhere", "--no-progress"])
    cmd = cell_command(spec, "mnist", "herding", 10, 2, "convnet")
    again = parse_args(shlex.split(cmd)[3:])
    assert again.datasets == ("mnist",) and again.methods == ("herding",) and again.ipc == (10,)
    assert again.seeds == (2,) and again.archs == ("convnet",) and again.precision == "bf16"
    assert again.checkpoints == 5 and again.overrides == ("herding.train_epochs=3",)   # not dm's
    assert again.out == SweepSpec().out


def _folder(tmp_path: Path) -> Path:
    """Two datasets' tables with set files (one with its inspect output) and recorded commands."""
    run = tmp_path / "run"
    (run / "sets").mkdir(parents=True)
    recs = []
    for ds, offset in (("toy", 0.0), ("other", 5.0)):
        for method, accs in (("random", (50.0, 54.0, 52.0)), ("herding", (60.0, 61.0, 62.0)),
                             ("dm", (75.0, 71.0, 73.0)), ("full", (90.0, 91.0, 92.0))):
            for s, acc in enumerate(accs):
                r = _rec(method, seed=s, acc=acc + offset)
                r.update(dataset=ds, key=f"{ds}-{r['key']}", set_path=f"sets/{ds}-{method}-{s}.h5",
                         storage_bytes={"total": 1000 * (len(method) + s)},
                         command=f"python -m benchmarks.run --datasets {ds} --methods {method} --seeds {s}",
                         machine={"device": "cpu", "cpu_count": 2}, deviations=[f"{method} deviation <b>"],
                         curve=[{"train_seconds": 1.0 + k, "acc": acc * k / 4, "on": "full" if k % 2 else "subset"}
                                for k in range(1, 5)])
                (run / r["set_path"]).write_bytes(b"\x89HDF")
                recs.append(r)
    (run / "sets" / "toy-dm-0.h5.inspect.txt").write_text("inspect output")
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    build([run], run)
    return run


def test_provenance_links_set_files_and_their_inspect_output_escaped(tmp_path):
    page = (_folder(tmp_path) / "leaderboard.html").read_text()
    assert 'href="sets/toy-dm-0.h5"' in page and 'href="sets/toy-dm-0.h5.inspect.txt"' in page
    assert "python -m condense inspect sets/toy-dm-1.h5" in page
    assert "dm deviation &lt;b&gt;" in page and "<b>" not in page
    assert "python -m benchmarks.run --datasets toy --methods dm --seeds 0" in page
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<link" not in page   # offline: nothing fetched


def test_the_main_jobs_page_stays_under_2_mb(tmp_path):
    build([ROOT / "results" / "main-job"], tmp_path)
    size = (tmp_path / "leaderboard.html").stat().st_size
    assert 10_000 < size < 2 * 2 ** 20, size


def _chromium() -> str | None:
    return os.environ.get("CONDENSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _browser_or_skip():
    """Playwright and Debian's Chromium; where ``CONDENSE_BROWSER=required`` (CI) their absence fails."""
    required = os.environ.get("CONDENSE_BROWSER") == "required"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail("playwright is not installed (pip install -e '.[test]')")
        pytest.skip("playwright is not installed")
    exe = _chromium()
    if exe is None:
        if required:
            pytest.fail("no chromium executable (apt-get install chromium)")
        pytest.skip("no chromium executable (apt-get install chromium)")
    return sync_playwright, exe


def test_the_page_in_headless_chromium_sorts_filters_opens_provenance_and_compares(tmp_path):
    sync_playwright, exe = _browser_or_skip()
    run = _folder(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((run / "leaderboard.html").as_uri())

        # no horizontal scroll at 1,280 px with the default columns; the table header sticks
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        assert page.evaluate("getComputedStyle(document.querySelector('table.lb th')).position") == "sticky"
        assert page.locator("section.tbl").count() == 2
        first = page.locator('section.tbl[data-dataset="toy"]')
        rows = first.locator("tr.row")
        assert rows.count() == 4

        def acc_keys():
            return [float(rows.nth(i).locator("td").nth(3).get_attribute("data-k")) for i in range(rows.count())]

        # sort by accuracy, by mouse then by keyboard
        first.locator('th[data-col="acc"] button').click()
        assert acc_keys() == sorted(acc_keys())
        assert first.locator('th[data-col="acc"]').get_attribute("aria-sort") == "ascending"
        first.locator('th[data-col="acc"] button').focus()
        page.keyboard.press("Enter")
        assert acc_keys() == sorted(acc_keys(), reverse=True)
        # each provenance row still follows its own row
        assert first.locator("tbody tr").nth(1).get_attribute("id") == "p-" + first.locator("tbody tr").nth(0).get_attribute("id")

        # filter by dataset, then by method
        page.select_option('select[data-filter="dataset"]', "other")
        assert page.locator("#count").text_content() == "4 of 8 rows"
        assert page.locator("section.tbl:visible").count() == 1
        page.select_option('select[data-filter="method"]', "dm")
        assert page.locator("tr.row:visible").count() == 1 and page.locator("#count").text_content() == "1 of 8 rows"
        page.select_option('select[data-filter="dataset"]', "")
        page.select_option('select[data-filter="method"]', "")
        assert page.locator("tr.row:visible").count() == 8

        # the long columns behind the toggle
        assert not first.locator('th[data-col="std"]').is_visible()
        page.check("#allcols")
        assert first.locator('th[data-col="std"]').is_visible()
        page.uncheck("#allcols")

        # a row's provenance, opened from the keyboard
        dm = first.locator('tr.row[data-method="dm"]')
        prov = page.locator("#p-" + dm.get_attribute("id"))
        assert not prov.is_visible()
        dm.locator("button.open").focus()
        page.keyboard.press("Enter")
        assert prov.is_visible() and "command" in prov.text_content()
        assert "--methods dm" in prov.text_content() and "inspect output" in prov.text_content()

        # compare two rows: their difference with a Welch interval and the overlaid curves
        first.locator('tr.row[data-method="dm"] input[type=checkbox]').check()
        first.locator('tr.row[data-method="random"] input[type=checkbox]').check()
        text = page.locator("#cmp-text").text_content()
        assert "A − B" in text and "+21.00 points" in text and "95 % interval" in text, text
        assert page.locator("#compare svg polyline").count() == 2
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_a_crafted_results_file_renders_as_text_in_the_browser(tmp_path):
    """Markup in every string a record carries (method, dataset, config, deviations, paths, command, source,
    machine) shows as text: no script runs, no element is injected, the literal text is on the page."""
    sync_playwright, exe = _browser_or_skip()
    run = tmp_path / "run"
    run.mkdir()
    payload = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    recs = []
    for s, acc in enumerate((50.0, 60.0)):
        r = _rec(payload, seed=s, acc=acc)
        r.update(dataset="toy" + payload, source=payload, command=payload, set_path="sets/" + payload + ".h5",
                 deviations=[payload], method_config={payload: payload}, machine={"host": payload},
                 versions={payload: payload})
        recs.append(r)
    recs.append({**_rec("random", seed=0, acc=40.0), "dataset": "toy" + payload, "source": payload,
                 "deviations": payload, "set_path": 7})
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    build([run], run)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((run / "leaderboard.html").as_uri())
        page.locator("tr.row button.open").first.click()
        page.locator("tr.row input[type=checkbox]").nth(0).check()
        page.locator("tr.row input[type=checkbox]").nth(1).check()
        pwned = page.evaluate("window.__pwned")
        injected = page.evaluate("document.querySelectorAll('main img[src=x], main script, #compare script').length")
        text = page.evaluate("document.body.innerText")
        browser.close()
    assert pwned is None and injected == 0
    assert text.count("<script>window.__pwned = 1</script>") >= 5   # heading, source, method, command, deviation


def test_a_sweep_keeps_each_cells_command_and_inspect_output_and_the_page_links_them(tmp_path):
    from benchmarks import run as runner
    from benchmarks.sweep.spec import parse_args

    out = tmp_path / "out"
    argv = ["--datasets", "digits", "--methods", "random", "--ipc", "2", "--seeds", "4", "--epochs", "2",
            "--checkpoints", "1", "--no-progress", "--out", str(out)]
    assert runner.main(argv) == 0
    (rec,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    again = parse_args(shlex.split(rec["command"])[3:])
    assert (again.datasets, again.methods, again.ipc, again.seeds, again.epochs, again.checkpoints) == \
        (("digits",), ("random",), (2,), (4,), 2, 1)
    txt = out / (rec["set_path"] + ".inspect.txt")
    assert "storage bytes:" in txt.read_text() and "random" in txt.read_text()
    page = (out / "leaderboard.html").read_text()
    assert f'href="{rec["set_path"]}.inspect.txt"' in page and shlex.join(shlex.split(rec["command"])) in page


def test_a_record_whose_code_or_plan_is_not_an_object_is_skipped_with_a_note(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    recs = [_rec("random", seed=0, acc=50.0), {**_rec("random", seed=1, acc=60.0), "code": "<b>"},
            {**_rec("random", seed=2, acc=70.0), "plan": [1, 2]},
            {**_rec("random", seed=3, acc=70.0), "machine": "<b>"}]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    md = build([run], run, with_plots=False)
    assert "skipped 3 unusable line(s)" in capsys.readouterr().err and "| 50.00 |" in md
