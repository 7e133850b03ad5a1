"""Cases: code execution from planted caches, and data loss on resume."""
from __future__ import annotations

from pathlib import Path


from .model import SWEEP, Invocation, case, _cli
from .forgers import _records, fake_tu, marker_pickle
from .harness import _run


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
def teacher_pickle(d: Path) -> Invocation:
    return _planted_teachers(d, partial=False)


@case("teacher-partial-pickle")
def teacher_partial_pickle(d: Path) -> Invocation:
    return _planted_teachers(d, partial=True)


@case("teacher-garbage")
def teacher_garbage(d: Path) -> Invocation:
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
def tu_processed_pickle(d: Path) -> Invocation:
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
def arrays_cache_pickle(d: Path) -> Invocation:
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
def jsonl_record_without_newline(d: Path) -> Invocation:
    return _resume_case(d, True)
