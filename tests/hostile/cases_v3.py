"""Cases, third pass: cached sets that are another cell's, integer datasets under foreign dtypes,
paths posing as names, fingerprints, bounds, results files that are links or FIFOs, a sweep with
nothing to run, and payloads in records on their way to Markdown and CSV."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

from .cases_caches import _prime
from .forgers import _records, composing_set, digits_set, edit, retype, set_attr
from .model import SWEEP, Invocation, _cli, case

# 1. a cached set reused for another cell


def _two_seed_sweep(d: Path, swap) -> Invocation:
    out = d / "out"
    argv = ["-m", "benchmarks.run", "--datasets", "digits", "--methods", "random", "--ipc", "1", "2", "--seeds", "0", "1",
            "--epochs", "2", "--checkpoints", "1", "--no-progress", "--out", str(out)]
    _prime(argv, d, {})
    genuine = {(r["ipc"], r["seed"]): r["acc"] for r in _records(out / "results.jsonl")}
    swap(out / "sets")
    (out / "results.jsonl").unlink()

    def check():
        again = {(r["ipc"], r["seed"]): r["acc"] for r in _records(out / "results.jsonl")}
        return None if again == genuine else f"records changed with the foreign sets: {genuine} -> {again}"
    return Invocation(argv, "ok", check=check)


def _one(sets: Path, ipc: int, seed: int) -> Path:
    return next(sets.glob(f"digits-random-ipc{ipc}-s{seed}-*.h5"))


@case("cached-set-seeds-swapped")
def cached_set_seeds_swapped(d: Path) -> Invocation:
    def swap(sets):
        a, b, tmp = _one(sets, 1, 0), _one(sets, 1, 1), sets / "tmp"
        shutil.move(a, tmp)
        shutil.move(b, a)
        shutil.move(tmp, b)
    return _two_seed_sweep(d, swap)


@case("cached-set-other-ipc")
def cached_set_other_ipc(d: Path) -> Invocation:
    return _two_seed_sweep(d, lambda sets: shutil.copyfile(_one(sets, 2, 0), _one(sets, 1, 0)))


# 2. integer datasets under foreign dtypes, graph IPC from content


def _mutag_set(d: Path, method: str, ipc: int = 2) -> Path:
    import condense
    from condense.data import load_dataset
    from condense.methods import create_condenser

    s = create_condenser(method, "quick").condense(load_dataset("MUTAG", "train"), ipc, seed=0)
    return condense.save(s, d / f"mutag-{method}.h5")


def _rs2_set(d: Path) -> Path:
    return digits_set(d, "rs2", 1)


DTYPE_CASES = [("labels-uint16", lambda d: digits_set(d), "labels", "uint16"),
               ("labels-uint32", lambda d: digits_set(d), "labels", "uint32"),
               ("labels-uint64", lambda d: digits_set(d), "labels", "uint64"),
               ("labels-uint8", lambda d: digits_set(d), "labels", "uint8"),
               ("schedule-indices-uint32", _rs2_set, "indices", "uint32"),
               ("graph-edge-index-uint32", lambda d: _mutag_set(d, "random"), "graphs/edge_index", "uint32"),
               ("graph-node-ptr-uint16", lambda d: _mutag_set(d, "random"), "graphs/node_ptr", "uint16"),
               ("graph-labels-uint64", lambda d: _mutag_set(d, "random"), "graphs/labels", "uint64"),
               ("graph-node-degree-uint32", lambda d: _mutag_set(d, "mirage"), "graphs/node_degree", "uint32")]

for _name, _make, _where, _dtype in DTYPE_CASES:
    def _dtype_case(d: Path, make=_make, where=_where, dtype=_dtype) -> Invocation:
        return Invocation(_cli("inspect", retype(make(d), where, dtype)))
    _dtype_case.__name__ = _name.replace("-", "_")
    case(_name)(_dtype_case)


@case("graph-ipc-edited-down")
def graph_ipc_edited_down(d: Path) -> Invocation:
    return Invocation(_cli("evaluate", edit(_mutag_set(d, "random", 3), set_attr("ipc", 1)), "--seeds", "0"))


def _extra(**changes):
    def fn(f):
        x = json.loads(f.attrs["extra"])
        x.update(changes)
        f.attrs["extra"] = json.dumps(x)
    return fn


@case("summary-ipc-edited-down")
def summary_ipc_edited_down(d: Path) -> Invocation:
    return Invocation(_cli("evaluate", edit(_mutag_set(d, "mirage", 4), set_attr("ipc", 1)), "--seeds", "0"))


@case("summary-source-bytes-inflated")
def summary_source_bytes_inflated(d: Path) -> Invocation:
    def forge(f):
        f.attrs["ipc"] = 1
        _extra(random_graph_bytes=4 * json.loads(f.attrs["extra"])["random_graph_bytes"])(f)
    return Invocation(_cli("evaluate", edit(_mutag_set(d, "mirage", 4), forge), "--seeds", "0"))


@case("schedule-ipc-edited-down")
def schedule_ipc_edited_down(d: Path) -> Invocation:
    return Invocation(_cli("inspect", edit(digits_set(d, "rs2", 2), set_attr("ipc", 1))))


# 3. names and fingerprints


@case("source-dataset-relative-path")
def source_dataset_relative_path(d: Path) -> Invocation:
    (d / "EVIL_A.txt").write_text("1, 2\n")
    evil = os.path.relpath(d / "EVIL", Path.home())
    return Invocation(_cli("evaluate", edit(digits_set(d), set_attr("source_dataset", f"../../../../{evil}")),
                           "--seeds", "0"))


@case("source-dataset-absolute-path")
def source_dataset_absolute_path(d: Path) -> Invocation:
    return Invocation(_cli("evaluate", edit(digits_set(d), set_attr("source_dataset", "/etc/passwd")), "--seeds", "0"))


@case("dataset-name-is-a-path")
def dataset_name_is_a_path(d: Path) -> Invocation:
    return Invocation(_cli("condense", "random", "../../../../etc", "--ipc", "1", "--out", d / "x.h5"))


@case("fingerprint-malformed")
def fingerprint_malformed(d: Path) -> Invocation:
    return Invocation(_cli("inspect", edit(digits_set(d), set_attr("source_fingerprint", "xyz"))))


@case("fingerprint-of-another-copy")
def fingerprint_of_another_copy(d: Path) -> Invocation:
    return Invocation(_cli("evaluate", edit(digits_set(d), set_attr("source_fingerprint", "0" * 32)), "--seeds", "0"))


# 4. bounds


@case("max-set-bytes-garbage")
def max_set_bytes_garbage(d: Path) -> Invocation:
    return Invocation(_cli("inspect", digits_set(d)), env={"CONDENSE_MAX_SET_BYTES": "abc"})


@case("max-set-bytes-float")
def max_set_bytes_float(d: Path) -> Invocation:
    return Invocation(_cli("inspect", digits_set(d)), env={"CONDENSE_MAX_SET_BYTES": "1e9"})


@case("compensators-compose-over-limit")
def compensators_compose_over_limit(d: Path) -> Invocation:
    import condense

    s = composing_set(64, side=8)
    path = condense.save(s, d / "c.h5")
    return Invocation(_cli("inspect", path), env={"CONDENSE_MAX_SET_BYTES": "500000"})


@case("inspect-100k-classes")
def inspect_100k_classes(d: Path) -> Invocation:
    import condense
    import torch
    from condense.format import SyntheticSet

    k = 100_000
    s = SyntheticSet(kind="images", method="random", ipc=1, num_classes=k, class_names=[str(i) for i in range(k)],
                     source_dataset="toy", source_fingerprint="f" * 32, seed=0,
                     images=torch.zeros(k, 1, 2, 2, dtype=torch.uint8), labels=torch.arange(k), mean=(0.5,), std=(0.5,))
    return Invocation(_cli("inspect", condense.save(s, d / "k.h5")), "ok", timeout=60)


# 5. results files the runner did not make


@case("results-symlink")
def results_symlink(d: Path) -> Invocation:
    elsewhere = d / "elsewhere.jsonl"
    elsewhere.write_bytes(b'{"key": "x", "status": "ok"}\n{"partial')
    before = elsewhere.read_bytes()
    (d / "out").mkdir()
    (d / "out" / "results.jsonl").symlink_to(elsewhere)
    return Invocation([*SWEEP, "--out", str(d / "out")],
                      check=lambda: None if elsewhere.read_bytes() == before else "the link's target was changed")


@case("results-fifo")
def results_fifo(d: Path) -> Invocation:
    (d / "out").mkdir()
    os.mkfifo(d / "out" / "results.jsonl")
    return Invocation([*SWEEP, "--out", str(d / "out")], timeout=120)


@case("leaderboard-results-fifo")
def leaderboard_results_fifo(d: Path) -> Invocation:
    (d / "out").mkdir()
    os.mkfifo(d / "out" / "results.jsonl")
    return Invocation(["-m", "benchmarks.leaderboard", str(d / "out"), "--no-plots"], timeout=120)


@case("results-partial-line-kept")
def results_partial_line_kept(d: Path) -> Invocation:
    out = d / "out"
    argv = [*SWEEP, "--out", str(out)]
    _prime(argv, d, {})
    with open(out / "results.jsonl", "ab") as f:
        f.write(b'{"key": "cut", "sta')

    def check():
        partial = out / "results.jsonl.partial"
        return None if partial.exists() and partial.read_bytes() == b'{"key": "cut", "sta\n' else "the partial line was lost"
    return Invocation(argv, "ok", check=check)


@case("nothing-to-run-misspelt")
def nothing_to_run_misspelt(d: Path) -> Invocation:
    argv = [a if a != "digits" else "digitz" for a in SWEEP] + ["--out", str(d / "out")]
    return Invocation(argv)


# 6. payloads in records


def _records_folder(d: Path, methods: list[str], accs=None) -> Path:
    folder = d / "run"
    folder.mkdir()
    p = {"name": "dc", "version": 1, "preset": "quick", "epochs": 300, "augment": None, "batch_size": 256,
         "checkpoints": 5, "budget": "steps", "loss": "ce", "mixup_alpha": 0.0}
    lines = []
    for i, m in enumerate(methods):
        acc = 50.0 + i if accs is None else accs[i]
        lines.append(json.dumps({
            "key": f"k{i}", "status": "ok", "dataset": "toy", "method": m, "ipc": 10, "seed": i, "train_seed": i + (1 << 62),
            "arch": "convnet", "protocol": p, "method_config": {}, "acc": acc, "targets": [60.0],
            "condense_seconds": 1.0, "teacher_seconds": 0.0, "train_seconds": 10.0, "storage_bytes": {"total": 1000},
            "source": "toy", "curve": [{"train_seconds": 5.0, "acc": 50.0}], "code": {"condenser": "c", "evaluator": "e"},
            "created_utc": "2026-11-29T00:00:00Z", "plan": {"steps": 301, "checkpoint_every": 60.2}}))
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _written(check):
    """A check that first asks whether the leaderboard was written at all."""
    def run():
        try:
            return check()
        except FileNotFoundError as e:
            return f"no leaderboard written ({e.filename})"
    return run


def _leaderboard(folder: Path, check) -> Invocation:
    return Invocation(["-m", "benchmarks.leaderboard", str(folder), "--no-plots"], "ok", check=_written(check))


@case("markdown-payload")
def markdown_payload(d: Path) -> Invocation:
    folder = _records_folder(d, ["<script>alert(1)</script>|x\n# injected", "<img src=x onerror=alert(1)>"])
    md = folder / "leaderboard.md"
    return _leaderboard(folder, lambda: "a payload reached the Markdown" if any(
        s in md.read_text() for s in ("<script", "<img", "\n# injected")) else None)


@case("csv-formula")
def csv_formula(d: Path) -> Invocation:
    formulas = ["=cmd|' /C calc'!A0", "+HYPERLINK(\"http://x\")", "@SUM(1+1)"]
    folder = _records_folder(d, formulas)

    def check():
        rows = list(csv.DictReader(io.StringIO((folder / "leaderboard.csv").read_text())))
        live = [r["method"] for r in rows if r["method"][:1] in "=+-@"]
        return f"formulas left live: {live}" if live else None
    return _leaderboard(folder, check)


@case("nan-accuracy-record")
def nan_accuracy_record(d: Path) -> Invocation:
    folder = _records_folder(d, ["random", "random", "random"], accs=[float("nan"), float("inf"), 50.0])
    md = folder / "leaderboard.md"
    return _leaderboard(folder, lambda: "a non-finite accuracy became a row" if any(
        s in md.read_text() for s in ("nan ±", "inf ±")) else None)


@case("long-method-name")
def long_method_name(d: Path) -> Invocation:
    name = "L" * 200_000
    folder = _records_folder(d, [name, "random"])
    md = folder / "leaderboard.md"
    return Invocation(["-m", "benchmarks.leaderboard", str(folder)], "ok", timeout=60,
                      check=_written(lambda: "the whole name reached the Markdown" if name in md.read_text() else None))

