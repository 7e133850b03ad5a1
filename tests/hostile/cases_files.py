"""Cases: crafted sets that read outside themselves, hang, blow up memory, or were edited and re-sealed."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .model import Invocation, case, _cli
from .forgers import _copy_attrs, clone, digits_set, edit, set_attr


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
def external_storage(d: Path) -> Invocation:
    target = d / "outside.bin"
    target.write_bytes(os.urandom(100_000))
    return Invocation(_cli("export", _external_images(d, target, "ext.h5"), "--png", d / "png", "--files"))


@case("external-link")
def external_link(d: Path) -> Invocation:
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
def external_fifo(d: Path) -> Invocation:
    fifo = d / "fifo"
    os.mkfifo(fifo)
    return Invocation(_cli("evaluate", _external_images(d, fifo, "fifo.h5"), "--seeds", "0"), timeout=60)


@case("fifo-as-set")
def fifo_as_set(d: Path) -> Invocation:
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
def declared_huge_images(d: Path) -> Invocation:
    p = clone(digits_set(d), d / "huge.h5", skip=("images",), after=_huge_images(False))
    return Invocation(_cli("inspect", p), max_rss_mb=1500)


@case("gzip-bomb")
def gzip_bomb(d: Path) -> Invocation:
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
def compensator_teacher_index(d: Path) -> Invocation:
    p = _infer_like(d, 40, 72_000_039, False)
    return Invocation(_cli("export", p, "--png", d / "png"), max_rss_mb=1500)


@case("compensator-instance-explosion")
def compensator_instance_explosion(d: Path) -> Invocation:
    p = _infer_like(d, 40_000, 0, True)
    return Invocation(_cli("inspect", p), max_rss_mb=1500)


@case("export-huge-scale")
def export_huge_scale(d: Path) -> Invocation:
    return Invocation(_cli("export", digits_set(d), "--png", d / "png", "--scale", "100000"), max_rss_mb=1500)


# 5. silent wrong results from edited, re-sealed sets

@case("negative-condense-seconds")
def negative_condense_seconds(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("condense_seconds", -1000.0))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("nan-condense-seconds")
def nan_condense_seconds(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("condense_seconds", float("nan")))
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("ipc-disagrees-with-counts")
def ipc_disagrees_with_counts(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("ipc", 1))
    return Invocation(_cli("inspect", p))


@case("cli-huge-ipc")
def cli_huge_ipc(d: Path) -> Invocation:
    return Invocation(_cli("condense", "random", "digits", "--ipc", "1000000000", "--out", d / "x.h5"))


@case("num-classes-edited")
def num_classes_edited(d: Path) -> Invocation:
    def fn(f):
        f.attrs["num_classes"] = 20
        f.attrs["class_names"] = json.dumps([str(i) for i in range(20)])
    p = edit(digits_set(d), fn)
    return Invocation(_cli("evaluate", p, "--seeds", "0"))


@case("source-split-test")
def source_split_test(d: Path) -> Invocation:
    p = edit(digits_set(d), set_attr("source_split", "test"))
    return Invocation(_cli("inspect", p))


@case("evaluate-on-train-split")
def evaluate_on_train_split(d: Path) -> Invocation:
    p = digits_set(d)
    return Invocation(["-m", "tests.hostile", "api", "evaluate-on-train", str(p)])


@case("set-negative-epochs")
def set_negative_epochs(d: Path) -> Invocation:
    return Invocation(_cli("condense", "herding", "digits", "--set", "train_epochs=-5", "--out", d / "x.h5"))


@case("set-zero-rounds")
def set_zero_rounds(d: Path) -> Invocation:
    return Invocation(_cli("condense", "rs2", "digits", "--set", "rounds=0", "--out", d / "x.h5"))
