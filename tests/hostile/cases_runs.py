"""Cases: sweeps sharing a folder, one-line errors where a traceback threatens, and the rest."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from .cases_caches import _prime
from .model import SWEEP, Invocation, case, _cli
from .forgers import _records, digits_set, edit, fake_cifar_folder, fake_mnist, fake_tu, set_attr


# 6. two sweeps into one folder

@case("two-sweeps-one-folder")
def two_sweeps_one_folder(d: Path) -> Invocation:
    out = d / "out"
    argv = ["-m", "benchmarks.run", "--datasets", "digits", "--methods", "random", "herding", "--ipc", "1", "2",
            "--seeds", "0", "--epochs", "2", "--checkpoints", "1", "--no-progress", "--out", str(out)]

    def check():
        lines = (out / "results.jsonl").read_bytes().splitlines()
        recs = _records(out / "results.jsonl")
        if len(recs) != len(lines):
            return "a results line does not parse"
        cells = {(r["method"], r["ipc"]) for r in recs if r.get("status") == "ok"}
        if cells != {(m, i) for m in ("random", "herding") for i in (1, 2)}:
            return f"cells lost: have {sorted(cells)}"
        return None
    return Invocation(argv, "ok", parallel=2, check=check, refusal="in use by another sweep")


# 7. tracebacks where a one-line error is promised

@case("image-shape-mismatch")
def image_shape_mismatch(d: Path) -> Invocation:
    import h5py

    def fn(f):
        x = f["images"][()]
        attrs = dict(f["images"].attrs)
        del f["images"]
        ds = f.create_dataset("images", data=np.repeat(x, 3, axis=1))
        for k, v in attrs.items():
            ds.attrs[k] = v
        ds.attrs["mean"] = np.array([0.3, 0.3, 0.3])
        ds.attrs["std"] = np.array([0.3, 0.3, 0.3])
        b = json.loads(f.attrs["storage_bytes"])
        b["images"] *= 3
        b["total"] = sum(v for k, v in b.items() if k != "total")
        f.attrs["storage_bytes"] = json.dumps(b)
    del h5py
    p = edit(digits_set(d), fn)
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("extra-as-list")
def extra_as_list(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("extra", "[1, 2]"))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("nan-producing-std")
def nan_producing_std(d: Path) -> Invocation:
    p = edit(digits_set(d), lambda f: f["images"].attrs.__setitem__("std", np.array([1e-300])))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("huge-mean")
def huge_mean(d: Path) -> Invocation:
    p = edit(digits_set(d), lambda f: f["images"].attrs.__setitem__("mean", np.array([1e300])))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


def _readonly_skip() -> str | None:
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        return "running as root without setpriv: read-only folders cannot be enforced"
    return None


@case("readonly-out-finished")
def readonly_out_finished(d: Path) -> Invocation:
    out = d / "out"
    argv = [*SWEEP, "--out", str(out)]
    _prime(argv, d, {})
    for p in [out, *out.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)

    def check():
        return None
    return Invocation(argv, "ok", readonly=True, check=check, skip=_readonly_skip())


@case("readonly-out-work-to-do")
def readonly_out_work_to_do(d: Path) -> Invocation:
    out = d / "out"
    out.mkdir()
    out.chmod(0o555)
    return Invocation([*SWEEP, "--out", str(out)], readonly=True, skip=_readonly_skip())


@case("idx-truncated")
def idx_truncated(d: Path) -> Invocation:
    root = fake_mnist(d / "data")
    f = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:100_000])
    return Invocation(_cli("condense", "random", "mnist", "--root", root, "--out", d / "x.h5"),
                      env={"CONDENSE_CACHE": str(d / "cache")})


@case("idx-bad-magic")
def idx_bad_magic(d: Path) -> Invocation:
    root = fake_mnist(d / "data")
    f = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    f.write_bytes(b"\x12\x34" + f.read_bytes()[2:])
    return Invocation(_cli("condense", "random", "mnist", "--root", root, "--out", d / "x.h5"),
                      env={"CONDENSE_CACHE": str(d / "cache")})


def _bad_jpeg(d: Path, content: bytes | None) -> Invocation:
    root = fake_cifar_folder(d / "data")
    f = root / "cifar10" / "train" / "class3" / "0000.jpg"
    f.write_bytes(f.read_bytes()[:200] if content is None else content)
    return Invocation(_cli("condense", "random", "cifar10", "--root", root, "--ipc", "1", "--out", d / "x.h5"),
                      env={"CONDENSE_CACHE": str(d / "cache")})


@case("jpeg-garbage")
def jpeg_garbage(d: Path) -> Invocation:
    return _bad_jpeg(d, b"this is not a jpeg at all" * 20)


@case("jpeg-empty")
def jpeg_empty(d: Path) -> Invocation:
    return _bad_jpeg(d, b"")


@case("jpeg-truncated")
def jpeg_truncated(d: Path) -> Invocation:
    return _bad_jpeg(d, None)


@case("readonly-cache")
def readonly_cache(d: Path) -> Invocation:
    cache = d / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    return Invocation(_cli("condense", "random-kd", "digits", "--ipc", "2", "--set", "teacher_recipe=tiny",
                           "--out", d / "x.h5"),
                      env={"CONDENSE_CACHE": str(cache)}, readonly=True, skip=_readonly_skip())


@case("set-not-a-number")
def set_not_a_number(d: Path) -> Invocation:
    return Invocation(_cli("condense", "herding", "digits", "--set", "train_epochs=abc", "--out", d / "x.h5"))


@case("out-is-a-folder")
def out_is_a_folder(d: Path) -> Invocation:
    (d / "folder").mkdir()

    def check():
        found = list((d / "folder").glob("*.h5"))
        return None if len(found) == 1 else "no set was written into the folder"
    return Invocation(_cli("condense", "random", "digits", "--out", d / "folder"), "ok", check=check)


@case("png-out-is-a-file")
def png_out_is_a_file(d: Path) -> Invocation:
    (d / "png").write_text("a file")
    return Invocation(_cli("export", digits_set(d), "--png", d / "png"))


@case("cuda-without-gpu")
def cuda_without_gpu(d: Path) -> Invocation:
    import torch

    skip = "a GPU is present" if torch.cuda.is_available() else None
    return Invocation(_cli("evaluate", digits_set(d), "--device", "cuda", "--seeds", "0"), skip=skip)


@case("graph-protocol-on-images")
def graph_protocol_on_images(d: Path) -> Invocation:
    return Invocation(_cli("evaluate", digits_set(d), "--protocol", "graph", "--seeds", "0"))


@case("dc-protocol-on-graphs")
def dc_protocol_on_graphs(d: Path) -> Invocation:
    env = {"CONDENSE_CACHE": str(d / "cache"), "CONDENSE_DATA": str(fake_tu(d / "data"))}
    _prime(_cli("condense", "random", "TOY", "--ipc", "2", "--out", d / "g.h5"), d, env)
    return Invocation(_cli("evaluate", d / "g.h5", "--protocol", "dc", "--seeds", "0"), env=env)


def _results_without(d: Path, key: str, argv_for) -> Invocation:
    out = d / "out"
    argv = [*SWEEP, "--out", str(out)]
    _prime(argv, d, {})
    res = out / "results.jsonl"
    rec = json.loads(res.read_bytes().splitlines()[0])
    rec.pop(key)
    rec["key"] = "another-key"
    with open(res, "ab") as f:
        f.write((json.dumps(rec) + "\n").encode())
    return Invocation(argv_for(out), "ok",
                      check=lambda: None if len(_records(res)) == 2 else "a results line was lost")


@case("results-line-without-status")
def results_line_without_status(d: Path) -> Invocation:
    return _results_without(d, "status", lambda out: [*SWEEP, "--out", str(out)])


@case("results-line-without-dataset")
def results_line_without_dataset(d: Path) -> Invocation:
    return _results_without(d, "dataset", lambda out: ["-m", "benchmarks.leaderboard", str(out)])


# 8. other

@case("evaluate-root-graph-val")
def evaluate_root_graph_val(d: Path) -> Invocation:
    root = fake_tu(d / "data")
    env = {"CONDENSE_CACHE": str(d / "cache"), "CONDENSE_DATA": ""}
    _prime(_cli("condense", "random", "TOY", "--ipc", "2", "--root", root, "--out", d / "g.h5"), d, env)
    return Invocation(_cli("evaluate", d / "g.h5", "--root", root, "--seeds", "0", "--arch", "gcn"), "ok",
                      env=env)


@case("evaluate-root-rs2-source")
def evaluate_root_rs2_source(d: Path) -> Invocation:
    root = fake_mnist(d / "data")
    env = {"CONDENSE_CACHE": str(d / "cache"), "CONDENSE_DATA": ""}
    _prime(_cli("condense", "rs2", "mnist", "--ipc", "1", "--root", root, "--out", d / "s.h5"), d, env)
    return Invocation(_cli("evaluate", d / "s.h5", "--protocol", "rs2", "--root", root, "--seeds", "0",
                           "--set", "epochs=3"), "ok", env=env)


@case("rs2-schedule-too-short")
def rs2_schedule_too_short(d: Path) -> Invocation:
    env = {"CONDENSE_CACHE": str(d / "cache")}
    _prime(_cli("condense", "rs2", "digits", "--ipc", "1", "--set", "rounds=20", "--out", d / "s.h5"), d, env)
    return Invocation(["-m", "tests.hostile", "api", "rs2-short", str(d / "s.h5")], env=env)


@case("negative-epochs")
def negative_epochs(d: Path) -> Invocation:
    argv = [*SWEEP, "--out", str(d / "out")]
    argv[argv.index("--epochs") + 1] = "-1"
    return Invocation(argv)


@case("set-file-mode")
def set_file_mode(d: Path) -> Invocation:
    out = d / "x.h5"

    def check():
        mode = out.stat().st_mode & 0o777
        return None if mode == 0o644 else f"the set was written with mode {oct(mode)} under umask 022"
    return Invocation(["-m", "tests.hostile", "api", "umask-save", str(out)], "ok", check=check)


@case("mnist-gz-idx")
def mnist_gz_idx(d: Path) -> Invocation:
    root = fake_mnist(d / "data", compress=True)
    return Invocation(_cli("condense", "random", "mnist", "--root", root, "--ipc", "1", "--out", d / "x.h5"),
                      "ok", env={"CONDENSE_CACHE": str(d / "cache")})
