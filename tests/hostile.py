"""Hostile inputs: crafted and damaged files, planted caches and bad arguments, each with the outcome
it must have.

Every case builds its inputs in a fresh folder and runs one real command in a child process (the CLI
as a user types it, or one API call), with a timeout. The outcome is classified:

- ``clean error``: the command failed with a one-line ``error: ...`` message (no traceback);
- ``ok``: the command succeeded and its check holds (a rebuilt cache, a kept record, a right answer);
- ``traceback``, ``hang`` (past the timeout), ``silent wrong`` (success where an error was due, a
  failed check, or a planted payload that ran), ``memory`` (peak RSS past the case's bound).

    python -m tests.hostile                 # every case, then the table of outcomes
    python -m tests.hostile --only fifo-as-set teacher-pickle

``tests/test_hostile.py`` runs every case under pytest. Cases that need read-only folders run the
child without CAP_DAC_OVERRIDE when the tests run as root (root ignores permission bits otherwise).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

CODE_ROOT = Path(__file__).resolve().parents[1]
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


# ----------------------------------------------------------------------------- builders


def marker_pickle(path: Path, marker: Path) -> None:
    """A pickle that creates ``marker`` when unpickled (stands for any code a planted file could run)."""
    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('payload ran')",)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Payload()))


def digits_set(folder: Path, method: str = "random", ipc: int = 10) -> Path:
    """A valid digits set made by the code under test."""
    import condense
    from condense.data import load_dataset
    from condense.methods import create_condenser

    path = folder / f"digits-{method}.h5"
    s = create_condenser(method, "quick").condense(load_dataset("digits", "train"), ipc, seed=0)
    condense.save(s, path)
    return path


def edit(path: Path, fn) -> Path:
    """Edit a set with plain h5py, then re-seal it: the seal proves integrity, not origin."""
    import h5py

    from condense.store import reseal

    with h5py.File(path, "r+") as f:
        fn(f)
    reseal(path)
    return path


def clone(src: Path, dst: Path, skip=(), after=None) -> Path:
    """A copy of ``src`` rebuilt object by object (``skip`` left out, ``after(f)`` adds), sealed."""
    import h5py

    from condense.store import reseal

    with h5py.File(src, "r") as s, h5py.File(dst, "w", userblock_size=512, libver=("v110", "latest")) as d:
        for k, v in s.attrs.items():
            d.attrs[k] = v
        for name in s:
            if name not in skip:
                s.copy(s[name], d, name=name)
        if after is not None:
            after(d, s)
    reseal(dst)
    return dst


def _copy_attrs(src, dst) -> None:
    for k, v in src.attrs.items():
        dst.attrs[k] = v


def set_attr(key, value):
    def fn(f):
        f.attrs[key] = value
    return fn


def write_idx(path: Path, arr: np.ndarray, compress: bool = False) -> None:
    """An idx file (the MNIST format): magic, big-endian dims, raw uint8 data."""
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = head + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def fake_mnist(root: Path, compress: bool = False, n_train: int = 5200, n_test: int = 200) -> Path:
    """A small MNIST-layout dataset (sparse random strokes) under ``root/MNIST/raw``."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):  # a class-dependent bar, so the data is learnable
            c = y[i]
            x[i, 4 + 2 * c:6 + 2 * c, 4:24] = 200 + rng.integers(0, 50)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8), compress)
    return root


def fake_cifar_folder(root: Path) -> Path:
    """A tiny ImageFolder ``root/cifar10/{train,test}/<class>/`` of valid 32×32 JPEGs."""
    from PIL import Image

    for split in ("train", "test"):
        for c in range(10):
            d = root / "cifar10" / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((32, 32, 3), 20 * c, np.uint8)).save(d / "0000.jpg")
    return root


def fake_tu(root: Path, name: str = "TOY", graphs: int = 40) -> Path:
    """A small TU-format graph dataset: two classes of paths and cycles, with node labels."""
    raw = root / "TUDataset" / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    edges, indicator, node_labels, graph_labels = [], [], [], []
    node = 1
    for g in range(graphs):
        cls = g % 2
        n = 4 + g % 3
        ids = list(range(node, node + n))
        pairs = list(zip(ids, ids[1:])) + ([(ids[-1], ids[0])] if cls else [])
        for a, b in pairs:
            edges += [(a, b), (b, a)]
        indicator += [g + 1] * n
        node_labels += [(i + cls) % 3 for i in range(n)]
        graph_labels.append(cls)
        node += n
    (raw / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / f"{name}_graph_indicator.txt").write_text("".join(f"{i}\n" for i in indicator))
    (raw / f"{name}_node_labels.txt").write_text("".join(f"{i}\n" for i in node_labels))
    (raw / f"{name}_graph_labels.txt").write_text("".join(f"{i}\n" for i in graph_labels))
    return root


def _records(path: Path) -> list[dict]:
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


# ----------------------------------------------------------------------------- the cases

CASES: dict[str, Callable[[Path], Invocation]] = {}


def case(name: str):
    def deco(fn):
        CASES[name] = fn
        return fn
    return deco


def _cli(*args) -> list[str]:
    return ["-m", "condense", *map(str, args)]


# 1. code execution from caches

def _teacher_cmd(out: Path) -> list[str]:
    return _cli("condense", "random-kd", "digits", "--ipc", "2", "--set", "teacher_recipe=tiny",
                "--set", 'teachers=["convnet_bn-w32"]', "--out", out)


def _prime(argv, d: Path, env: dict) -> None:
    r = _run(argv, d, env, 600)
    if r[0] != 0:
        raise RuntimeError(f"priming run failed: {r[2][-2000:]}")


def _planted_teachers(d: Path, partial: bool) -> Invocation:
    env = {"CONDENSE_CACHE": str(d / "cache")}
    _prime(_teacher_cmd(d / "first.h5"), d, env)
    marker = d / "PAYLOAD-RAN"
    for p in list((d / "cache" / "teachers").glob("*")):
        marker_pickle(p.with_name(p.name.replace(".pt", ".partial.pt")) if partial else p, marker)
        if partial:
            p.unlink()
    return Invocation(_teacher_cmd(d / "second.h5"), "ok", env=env,
                      check=lambda: "the planted pickle ran" if marker.exists() else None)


@case("teacher-pickle")
def _(d: Path) -> Invocation:
    return _planted_teachers(d, partial=False)


@case("teacher-partial-pickle")
def _(d: Path) -> Invocation:
    return _planted_teachers(d, partial=True)


@case("teacher-garbage")
def _(d: Path) -> Invocation:
    env = {"CONDENSE_CACHE": str(d / "cache")}
    _prime(_teacher_cmd(d / "first.h5"), d, env)
    files = list((d / "cache" / "teachers").glob("*"))
    for p in files:
        p.write_bytes(b"not a checkpoint" * 10)

    def check():
        if not all(p.exists() and p.stat().st_size > 1000 for p in files):
            return "the damaged teacher was not rebuilt"
        return None
    return Invocation(_teacher_cmd(d / "second.h5"), "ok", env=env, check=check)


@case("tu-processed-pickle")
def _(d: Path) -> Invocation:
    env = {"CONDENSE_CACHE": str(d / "cache"), "CONDENSE_DATA": str(fake_tu(d / "data"))}
    argv = _cli("condense", "random", "TOY", "--ipc", "2", "--out", d / "g.h5")
    _prime(argv, d, env)
    marker = d / "PAYLOAD-RAN"
    tu = d / "cache" / "tu"
    targets = {tu / "TOY" / "processed" / "data.pt"} | {p for p in tu.rglob("*") if p.is_file() and "raw" not in p.parts}
    for p in targets:
        marker_pickle(p, marker)
    return Invocation(argv, "ok", env=env, check=lambda: "the planted pickle ran" if marker.exists() else None)


@case("arrays-cache-pickle")
def _(d: Path) -> Invocation:
    env = {"CONDENSE_CACHE": str(d / "cache")}
    argv = _cli("condense", "random", "digits", "--ipc", "2", "--out", d / "x.h5")
    _prime(argv, d, env)
    marker = d / "PAYLOAD-RAN"
    planted = [p for p in (d / "cache" / "arrays").glob("*") if p.is_file()]
    for p in planted:
        marker_pickle(p, marker)

    def check():
        if marker.exists():
            return "the planted pickle ran"
        if any(p.read_bytes()[:2] == b"\x80\x04" for p in planted):
            return "the planted cache file was not rebuilt"
        return None
    return Invocation(argv, "ok", env=env, check=check)


# 2. data loss on resume

def _resume_case(d: Path, keep_newline_off: bool) -> Invocation:
    out = d / "out"
    argv = [*SWEEP, "--out", str(out)]
    _prime(argv, d, {})
    res = out / "results.jsonl"
    original = res.read_bytes().rstrip(b"\n")
    res.write_bytes(original)  # a complete record that lacks only its newline

    def check():
        data = res.read_bytes()
        if not data.startswith(original):
            return "the complete last record was cut or rewritten"
        recs = _records(res)
        if len(recs) != 1:
            return f"expected the one record to be kept and not recomputed, found {len(recs)}"
        return None
    return Invocation(argv, "ok", check=check)


@case("jsonl-record-without-newline")
def _(d: Path) -> Invocation:
    return _resume_case(d, True)


# 3. crafted sets that read outside themselves, or hang

def _external_images(d: Path, target: Path, name: str) -> Path:
    """A copy of a digits set whose ``/images`` live in ``target`` (HDF5 external storage)."""
    def after(f, s):
        x = s["images"]
        ds = f.create_dataset("images", shape=x.shape, dtype=x.dtype,
                              external=[(str(target), 0, int(np.prod(x.shape)))])
        _copy_attrs(x, ds)
    return clone(digits_set(d), d / name, skip=("images",), after=after)


@case("external-storage")
def _(d: Path) -> Invocation:
    target = d / "outside.bin"
    target.write_bytes(os.urandom(100_000))
    return Invocation(_cli("export", _external_images(d, target, "ext.h5"), "--png", d / "png", "--files"))


@case("external-link")
def _(d: Path) -> Invocation:
    import h5py

    base = digits_set(d)
    other = d / "other.h5"
    with h5py.File(other, "w") as f:
        with h5py.File(base, "r") as s:
            s.copy(s["images"], f, name="images")
    p = clone(base, d / "link.h5", skip=("images",),
              after=lambda f, s: f.__setitem__("images", h5py.ExternalLink(str(other), "/images")))
    return Invocation(_cli("inspect", p))


@case("external-fifo")
def _(d: Path) -> Invocation:
    fifo = d / "fifo"
    os.mkfifo(fifo)
    return Invocation(_cli("evaluate", _external_images(d, fifo, "fifo.h5"), "--seeds", "0"), timeout=60)


@case("fifo-as-set")
def _(d: Path) -> Invocation:
    fifo = d / "set.h5"
    os.mkfifo(fifo)
    return Invocation(_cli("inspect", fifo), timeout=60)


# 4. memory blow-ups from tiny files

def _huge_images(compressed: bool):
    def after(f, s):
        x = s["images"]
        shape = (640, 3, 512, 512)
        if compressed:  # every chunk present, all zeros: a gzip bomb
            ds = f.create_dataset("images", shape=shape, dtype="uint8", chunks=(1, 3, 512, 512),
                                  compression="gzip", compression_opts=9, shuffle=True, fletcher32=True)
            zero = np.zeros((1, 3, 512, 512), np.uint8)
            for i in range(shape[0]):
                ds[i:i + 1] = zero
        else:  # declared, never written
            ds = f.create_dataset("images", shape=shape, dtype="uint8", chunks=(1, 3, 512, 512),
                                  compression="gzip", fletcher32=True)
        _copy_attrs(x, ds)
        ds.attrs["mean"] = np.array([0.5, 0.5, 0.5])
        ds.attrs["std"] = np.array([0.25, 0.25, 0.25])
        del f["labels"]
        f.create_dataset("labels", data=np.arange(640) % 10)
        f.attrs["ipc"] = 64
        n = 640 * 3 * 512 * 512  # storage_bytes made consistent, so only the size can give it away
        f.attrs["storage_bytes"] = json.dumps({"images": n, "labels": 640 * 8, "total": n + 640 * 8})
    return after


@case("declared-huge-images")
def _(d: Path) -> Invocation:
    p = clone(digits_set(d), d / "huge.h5", skip=("images",), after=_huge_images(False))
    return Invocation(_cli("inspect", p), max_rss_mb=1500)


@case("gzip-bomb")
def _(d: Path) -> Invocation:
    p = clone(digits_set(d), d / "bomb.h5", skip=("images",), after=_huge_images(True))
    return Invocation(_cli("inspect", p), max_rss_mb=1500)


def _infer_like(d: Path, k: int, teacher_value: int | None, image_batch_same: bool) -> Path:
    """A digits set with ``k`` compensators (INFER's layout) crafted by hand."""
    base = digits_set(d, ipc=10)

    def after(f, s):
        n = s["labels"].shape[0]
        g = f.create_group("compensators")
        g.attrs["encoding"] = "affine-uint8"
        g.create_dataset("values", data=np.zeros((k, 1, 8, 8), np.uint8))  # stored plainly: no bomb here
        g.create_dataset("scale", data=np.full(k, 0.01, np.float32))
        g.create_dataset("offset", data=np.zeros(k, np.float32))
        g.create_dataset("batch", data=np.zeros(k, np.int64))
        g.create_dataset("image_batch", data=np.zeros(n, np.int64) if image_batch_same else np.arange(n) % 10)
        if teacher_value is not None:
            g.create_dataset("teacher", data=np.full(k, teacher_value, np.int64))
        b = json.loads(f.attrs["storage_bytes"])
        b["compensators"] = k * 64 + k * 4 * 2 + k * 8 + n * 8 + (k * 8 if teacher_value is not None else 0)
        b["total"] = sum(v for kk, v in b.items() if kk != "total")
        f.attrs["storage_bytes"] = json.dumps(b)
        f.attrs["format_version"] = 2
        f.attrs["ipc"] = 1_000_000
    return clone(base, d / "infer-like.h5", skip=("compensators",), after=after)


@case("compensator-teacher-index")
def _(d: Path) -> Invocation:
    p = _infer_like(d, 40, 72_000_039, False)
    return Invocation(_cli("export", p, "--png", d / "png"), max_rss_mb=1500)


@case("compensator-instance-explosion")
def _(d: Path) -> Invocation:
    p = _infer_like(d, 40_000, 0, True)
    return Invocation(_cli("inspect", p), max_rss_mb=1500)


@case("export-huge-scale")
def _(d: Path) -> Invocation:
    return Invocation(_cli("export", digits_set(d), "--png", d / "png", "--scale", "100000"), max_rss_mb=1500)


# 5. silent wrong results from edited, re-sealed sets

@case("negative-condense-seconds")
def _(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("condense_seconds", -1000.0))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("nan-condense-seconds")
def _(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("condense_seconds", float("nan")))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("ipc-disagrees-with-counts")
def _(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("ipc", 1))
    return Invocation(_cli("inspect", p))


@case("cli-huge-ipc")
def _(d: Path) -> Invocation:
    return Invocation(_cli("condense", "random", "digits", "--ipc", "1000000000", "--out", d / "x.h5"))


@case("num-classes-edited")
def _(d: Path) -> Invocation:
    def fn(f):
        f.attrs["num_classes"] = 20
        f.attrs["class_names"] = json.dumps([str(i) for i in range(20)])
    p = edit(digits_set(d), fn)
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("source-split-test")
def _(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("source_split", "test"))
    return Invocation(_cli("inspect", p))


@case("evaluate-on-train-split")
def _(d: Path) -> Invocation:
    p = digits_set(d)
    return Invocation(["-m", "tests.hostile", "api", "evaluate-on-train", str(p)])


@case("set-negative-epochs")
def _(d: Path) -> Invocation:
    return Invocation(_cli("condense", "herding", "digits", "--set", "train_epochs=-5", "--out", d / "x.h5"))


@case("set-zero-rounds")
def _(d: Path) -> Invocation:
    return Invocation(_cli("condense", "rs2", "digits", "--set", "rounds=0", "--out", d / "x.h5"))


# 6. two sweeps into one folder

@case("two-sweeps-one-folder")
def _(d: Path) -> Invocation:
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
def _(d: Path) -> Invocation:
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
def _(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("extra", "[1, 2]"))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("nan-producing-std")
def _(d: Path) -> Invocation:
    p = edit(digits_set(d), lambda f: f["images"].attrs.__setitem__("std", np.array([1e-300])))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("huge-mean")
def _(d: Path) -> Invocation:
    p = edit(digits_set(d), lambda f: f["images"].attrs.__setitem__("mean", np.array([1e300])))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


def _readonly_skip() -> str | None:
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        return "running as root without setpriv: read-only folders cannot be enforced"
    return None


@case("readonly-out-finished")
def _(d: Path) -> Invocation:
    out = d / "out"
    argv = [*SWEEP, "--out", str(out)]
    _prime(argv, d, {})
    for p in [out, *out.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)

    def check():
        return None
    return Invocation(argv, "ok", readonly=True, check=check, skip=_readonly_skip())


@case("readonly-out-work-to-do")
def _(d: Path) -> Invocation:
    out = d / "out"
    out.mkdir()
    out.chmod(0o555)
    return Invocation([*SWEEP, "--out", str(out)], readonly=True, skip=_readonly_skip())


@case("idx-truncated")
def _(d: Path) -> Invocation:
    root = fake_mnist(d / "data")
    f = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:100_000])
    return Invocation(_cli("condense", "random", "mnist", "--root", root, "--out", d / "x.h5"),
                      env={"CONDENSE_CACHE": str(d / "cache")})


@case("idx-bad-magic")
def _(d: Path) -> Invocation:
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
def _(d: Path) -> Invocation:
    return _bad_jpeg(d, b"this is not a jpeg at all" * 20)


@case("jpeg-empty")
def _(d: Path) -> Invocation:
    return _bad_jpeg(d, b"")


@case("jpeg-truncated")
def _(d: Path) -> Invocation:
    return _bad_jpeg(d, None)


@case("readonly-cache")
def _(d: Path) -> Invocation:
    cache = d / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    return Invocation(_cli("condense", "random-kd", "digits", "--ipc", "2", "--set", "teacher_recipe=tiny",
                           "--out", d / "x.h5"),
                      env={"CONDENSE_CACHE": str(cache)}, readonly=True, skip=_readonly_skip())


@case("set-not-a-number")
def _(d: Path) -> Invocation:
    return Invocation(_cli("condense", "herding", "digits", "--set", "train_epochs=abc", "--out", d / "x.h5"))


@case("out-is-a-folder")
def _(d: Path) -> Invocation:
    (d / "folder").mkdir()

    def check():
        found = list((d / "folder").glob("*.h5"))
        return None if len(found) == 1 else "no set was written into the folder"
    return Invocation(_cli("condense", "random", "digits", "--out", d / "folder"), "ok", check=check)


@case("png-out-is-a-file")
def _(d: Path) -> Invocation:
    (d / "png").write_text("a file")
    return Invocation(_cli("export", digits_set(d), "--png", d / "png"))


@case("cuda-without-gpu")
def _(d: Path) -> Invocation:
    import torch

    skip = "a GPU is present" if torch.cuda.is_available() else None
    return Invocation(_cli("evaluate", digits_set(d), "--device", "cuda", "--seeds", "0"), skip=skip)


@case("graph-protocol-on-images")
def _(d: Path) -> Invocation:
    return Invocation(_cli("evaluate", digits_set(d), "--protocol", "graph", "--seeds", "0"))


@case("dc-protocol-on-graphs")
def _(d: Path) -> Invocation:
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
def _(d: Path) -> Invocation:
    return _results_without(d, "status", lambda out: [*SWEEP, "--out", str(out)])


@case("results-line-without-dataset")
def _(d: Path) -> Invocation:
    return _results_without(d, "dataset", lambda out: ["-m", "benchmarks.leaderboard", str(out)])


# 8. other

@case("evaluate-root-graph-val")
def _(d: Path) -> Invocation:
    root = fake_tu(d / "data")
    env = {"CONDENSE_CACHE": str(d / "cache"), "CONDENSE_DATA": ""}
    _prime(_cli("condense", "random", "TOY", "--ipc", "2", "--root", root, "--out", d / "g.h5"), d, env)
    return Invocation(_cli("evaluate", d / "g.h5", "--root", root, "--seeds", "0", "--arch", "gcn"), "ok",
                      env=env)


@case("evaluate-root-rs2-source")
def _(d: Path) -> Invocation:
    root = fake_mnist(d / "data")
    env = {"CONDENSE_CACHE": str(d / "cache"), "CONDENSE_DATA": ""}
    _prime(_cli("condense", "rs2", "mnist", "--ipc", "1", "--root", root, "--out", d / "s.h5"), d, env)
    return Invocation(_cli("evaluate", d / "s.h5", "--protocol", "rs2", "--root", root, "--seeds", "0"), "ok",
                      env=env)


@case("rs2-schedule-too-short")
def _(d: Path) -> Invocation:
    env = {"CONDENSE_CACHE": str(d / "cache")}
    _prime(_cli("condense", "rs2", "digits", "--ipc", "1", "--set", "rounds=20", "--out", d / "s.h5"), d, env)
    return Invocation(["-m", "tests.hostile", "api", "rs2-short", str(d / "s.h5")], env=env)


@case("negative-epochs")
def _(d: Path) -> Invocation:
    argv = [*SWEEP, "--out", str(d / "out")]
    argv[argv.index("--epochs") + 1] = "-1"
    return Invocation(argv)


@case("set-file-mode")
def _(d: Path) -> Invocation:
    out = d / "x.h5"

    def check():
        mode = out.stat().st_mode & 0o777
        return None if mode == 0o644 else f"the set was written with mode {oct(mode)} under umask 022"
    return Invocation(["-m", "tests.hostile", "api", "umask-save", str(out)], "ok", check=check)


@case("mnist-gz-idx")
def _(d: Path) -> Invocation:
    root = fake_mnist(d / "data", compress=True)
    return Invocation(_cli("condense", "random", "mnist", "--root", root, "--ipc", "1", "--out", d / "x.h5"),
                      "ok", env={"CONDENSE_CACHE": str(d / "cache")})


# ----------------------------------------------------------------------------- API cases


def _api(name: str, args: list[str]) -> int:
    """One API call as a child process: a ValueError (FormatError included) is a clean error."""
    from condense.data import load_dataset
    from condense.evaluate import evaluate

    try:
        if name == "evaluate-on-train":
            evaluate(args[0], load_dataset("digits", "train"), protocol="dc", seeds=[0])
            return 0
        if name == "rs2-short":
            from condense.evaluate import train_images

            called = []

            def spy(*a, **k):
                called.append(1)
                return train_images(*a, **k)

            import condense.evaluate as ev
            ev.train_images = spy
            try:
                evaluate(args[0], load_dataset("digits", "test"), protocol="rs2", seeds=[0])
            except ValueError:
                if called:
                    print("error: refused only after training started", file=sys.stderr)
                    raise RuntimeError("late refusal") from None
                raise
            return 0
        if name == "umask-save":
            os.umask(0o022)
            digits_set(Path(args[0]).parent)
            os.replace(Path(args[0]).parent / "digits-random.h5", args[0])
            return 0
    except ValueError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    raise SystemExit(f"unknown api case {name}")


# ----------------------------------------------------------------------------- running


LAUNCH = textwrap.dedent("""
    import atexit, os, resource, runpy, sys
    def _rss():  # VmHWM: peak RSS of this program (getrusage would include the parent's, kept over exec)
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            with open("/proc/self/status") as st:
                kb = next(int(ln.split()[1]) for ln in st if ln.startswith("VmHWM:"))
        except (OSError, StopIteration):
            pass
        with open(os.environ["HOSTILE_RSS_FILE"], "w") as f:
            f.write(str(kb))
    atexit.register(_rss)
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
""")


def _env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDENSE_")}
    env.update({"PYTHONPATH": str(CODE_ROOT), "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore",
                "CONDENSE_DATA": os.environ.get("CONDENSE_DATA", ""),
                "CONDENSE_CACHE": os.environ.get("CONDENSE_CACHE", "")})
    env.update(extra)
    return {k: v for k, v in env.items() if v != "" or k == "CONDENSE_DATA"}


def _cmd(argv: list[str], readonly: bool) -> list[str]:
    if argv[0] == "-m":
        cmd = [sys.executable, "-c", LAUNCH, *argv[1:]]
    else:
        cmd = [sys.executable, *argv]
    if readonly and os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", *cmd]
    return cmd


def _run(argv, d: Path, env: dict, timeout: float, readonly: bool = False):
    """(returncode, stdout, stderr, timed out, peak RSS MB) of one child."""
    return _finish(_start(argv, d, env, readonly), timeout)


def _start(argv, d: Path, env: dict, readonly: bool):
    rss_file = d / f".rss-{time.monotonic_ns()}"
    e = _env({**env, "HOSTILE_RSS_FILE": str(rss_file)})
    return subprocess.Popen(_cmd(argv, readonly), cwd=d, env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True), rss_file


def _finish(started, timeout: float):
    p, rss_file = started
    try:
        out, err = p.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, err = p.communicate()
        timed_out = True
    rss = float(rss_file.read_text()) / 1024 if rss_file.exists() else None
    rss_file.unlink(missing_ok=True)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), timed_out, rss


PROGRESS = re.compile(r"\d+%\||\d+(it|step|cell)/s\]|\[\d\d:\d\d<")


def _one_line_error(err: str) -> bool:
    """The run ended with one ``error:`` line; notes and progress bars may come before it."""
    lines = [ln for ln in err.replace("\r", "\n").strip().splitlines() if ln.strip() and not PROGRESS.search(ln)]
    if not lines:
        return False
    benign = ("note:", "skip ", "usage:", "  ", "warning:")
    return "error:" in lines[-1] and all(ln.startswith(benign) or "error:" in ln for ln in lines[:-1])


def run_case(name: str, folder: Path) -> Result:
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        inv = CASES[name](folder)
    except Exception as e:  # noqa: BLE001 - building the case needs the code under test
        return Result(name, "traceback", time.perf_counter() - t0, None,
                      f"building the case failed: {type(e).__name__}: {e}")
    if inv.skip:
        return Result(name, "skipped", 0.0, None, inv.skip)
    if inv.parallel > 1:
        procs = [_start(inv.argv, folder, inv.env, inv.readonly) for _ in range(inv.parallel)]
        runs = [_finish(p, inv.timeout) for p in procs]
    else:
        runs = [_run(inv.argv, folder, inv.env, inv.timeout, inv.readonly)]
    seconds = time.perf_counter() - t0
    rss = max((r[4] for r in runs if r[4] is not None), default=None)
    outcome, detail = _classify(inv, runs, rss)
    return Result(name, outcome, seconds, rss, detail)


def _classify(inv: Invocation, runs, rss) -> tuple[str, str]:
    err_all = "\n".join(r[2] for r in runs)
    last = [ln for ln in err_all.strip().splitlines() if ln.strip()][-3:]
    tail = " | ".join(last)[-300:]
    if any(r[3] for r in runs):
        return "hang", f"no answer within {inv.timeout:.0f} s"
    if inv.max_rss_mb is not None and rss is not None and rss > inv.max_rss_mb:
        return "memory", f"peak RSS {rss:.0f} MB > {inv.max_rss_mb:.0f} MB; {tail}"
    problem = inv.check() if inv.check is not None else None
    if problem and "payload" in problem:
        return "silent wrong", problem
    if "Traceback (most recent call last)" in err_all:
        return "traceback", tail
    if inv.expect == "error":
        if all(r[0] == 0 for r in runs):
            return "silent wrong", "accepted: exit status 0"
        if all(_one_line_error(r[2]) for r in runs if r[0] != 0):
            return "clean error", tail
        return "traceback", f"not a one-line error: {tail}"
    refused = [r for r in runs if r[0] != 0]
    if inv.refusal and len(refused) < len(runs) and all(
            _one_line_error(r[2]) and inv.refusal in r[2] for r in refused):
        refused = []  # a second writer stopped at once, in one line: what the folder lock promises
    if refused:
        return "silent wrong", f"refused valid input (exit {[r[0] for r in runs]}): {tail}"
    if problem:
        return "silent wrong", problem
    return "ok", (tail or "ok")


def report(results: list[Result]) -> str:
    counts = {o: sum(r.outcome == o for r in results) for o in (*OUTCOMES, "skipped")}
    tried = len(results) - counts["skipped"]
    head = ("| cases tried | clean errors | handled (ok) | tracebacks | hangs | silent wrong results "
            "| memory blow-ups | skipped |")
    sep = "|" + "---|" * 8
    row = (f"| {tried} | {counts['clean error']} | {counts['ok']} | {counts['traceback']} | {counts['hang']} "
           f"| {counts['silent wrong']} | {counts['memory']} | {counts['skipped']} |")
    return "\n".join([head, sep, row])


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["api"]:
        return _api(argv[1], argv[2:])
    ap = argparse.ArgumentParser(prog="python -m tests.hostile", description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=None, help="run only these cases")
    ap.add_argument("--work", type=Path, default=None, help="folder for the cases (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON lines")
    args = ap.parse_args(argv)
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="hostile-"))
    names = args.only or list(CASES)
    results = []
    for name in names:
        r = run_case(name, work / name)
        results.append(r)
        rss = f"{r.rss_mb:6.0f} MB" if r.rss_mb is not None else "      —"
        print(f"{name:<34} {r.outcome:<13} {r.seconds:6.1f} s {rss}  {r.detail[:150]}", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(r.__dict__) + "\n")
    print()
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
