"""Hostile files, caches and arguments: every case of ``tests/hostile/`` ends in a one-line error or a
clean rebuild, never a traceback, a hang, a blow-up or a silent wrong result; plus fuzzing of
attributes, shapes and compensator pairings with Hypothesis, in process, under a memory bound."""
from __future__ import annotations

import json
import signal
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import condense
from condense.store import FormatError, SyntheticSet, reseal

from . import hostile

# ----------------------------------------------------------------------------- the crafted cases


@pytest.mark.parametrize("name", list(hostile.CASES))
def test_hostile_case(name, tmp_path):
    r = hostile.run_case(name, tmp_path / name)
    if r.outcome == "skipped":
        pytest.skip(r.detail)
    assert r.outcome in ("clean error", "ok"), f"{name}: {r.outcome}: {r.detail}"


def test_report_counts_outcomes():
    rows = [hostile.Result(n, o, 1.0, None, "") for n, o in
            [("a", "clean error"), ("b", "ok"), ("c", "hang"), ("d", "skipped"), ("e", "silent wrong")]]
    table = hostile.report(rows)
    assert "| 4 | 1 | 1 | 0 | 1 | 1 | 0 | 1 |" in table


def test_one_line_error_rule():
    assert hostile.one_line_error("error: x.h5: bad\n")
    assert hostile.one_line_error("note: rebuilt a cache\nerror: x.h5: bad\n")
    assert not hostile.one_line_error("Traceback (most recent call last):\n  File ...\nValueError: x\n")
    assert not hostile.one_line_error("")


# ----------------------------------------------------------------------------- fuzzing in process

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MEMORY_BOUND = 64 << 20  # a few-kilobyte file may not make the reader allocate more than this


def _alarm(signum, frame):
    raise TimeoutError("reading a crafted file took over 10 s")


def _load_bounded(path: Path) -> SyntheticSet | None:
    """Load under a 10 s alarm and a traced-memory bound: a FormatError or a set; nothing else."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    tracemalloc.start()
    try:
        return condense.load(path)
    except FormatError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        assert peak < MEMORY_BOUND, f"reading allocated {peak:,} bytes"


def _base(tmp_path: Path, compensators: bool = False) -> Path:
    g = torch.Generator().manual_seed(0)
    n_per, classes = 2, 4
    kw = {}
    if compensators:
        k = 2 * n_per  # 2 teachers × n_per init batches
        kw = dict(compensators={"values": torch.randint(0, 256, (k, 1, 6, 6), generator=g, dtype=torch.uint8),
                                "scale": torch.full((k,), 0.01), "offset": torch.zeros(k),
                                "batch": torch.arange(n_per).repeat(2),
                                "image_batch": torch.arange(n_per).repeat_interleave(classes),
                                "teacher": torch.arange(2).repeat_interleave(n_per)},
                  method_config={"teachers": ["a", "b"]}, format_version=2)
    s = SyntheticSet(kind="images", method="fuzz", ipc=n_per * 3 if compensators else n_per, num_classes=classes,
                     class_names=[str(i) for i in range(classes)], source_dataset="toy", source_fingerprint="f" * 32,
                     seed=0, images=torch.randint(0, 256, (n_per * classes, 1, 6, 6), generator=g, dtype=torch.uint8),
                     mean=(0.5,), std=(0.25,), labels=torch.arange(classes).repeat(n_per),
                     condense_seconds=2.0, teacher_seconds=1.0, **kw)
    return condense.save(s, tmp_path / "base.h5")


def _edit(path: Path, fn) -> Path:
    with h5py.File(path, "r+") as f:
        fn(f)
        parts = {}
        for name in ("images", "labels", "soft_labels"):
            if name in f:
                parts[name] = int(f[name].size * f[name].dtype.itemsize)
        if "compensators" in f:
            parts["compensators"] = sum(int(d.size * d.dtype.itemsize) for d in f["compensators"].values())
        parts["total"] = sum(parts.values())
        f.attrs["storage_bytes"] = json.dumps(parts)  # consistent, so only the rule under test can object
    reseal(path)
    return path


def _assert_sound(s: SyntheticSet) -> None:
    """What a set that loads must satisfy: nothing a re-sealed edit could have slipped through."""
    assert s.source_split == "train" and s.condense_seconds >= 0 and s.teacher_seconds >= 0
    assert np.isfinite(s.condense_seconds) and np.isfinite(s.teacher_seconds)
    assert 0 <= s.seed < 2 ** 63 and len(s.class_names) == s.num_classes
    if s.kind == "images":
        counts = torch.bincount(s.labels, minlength=s.num_classes)
        k = 0 if s.compensators is None else s.compensators["values"].shape[0]
        if s.ipc:
            assert int(counts.max()) <= s.ipc and int(counts.sum()) + k <= s.ipc * s.num_classes
        x, y = s.instances()
        assert torch.isfinite(x).all() and x.shape[0] == y.shape[0] == s.num_instances()


ATTR_VALUES = st.one_of(
    st.integers(-(2 ** 63), 2 ** 63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["test", "val", "train", "[]", "{}", "[1, 2]", '{"a": 1}', "null", "NaN", "-1", "1e309"]),
    st.text(max_size=12, alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    st.lists(st.integers(0, 3), min_size=2, max_size=3).map(np.array),
)
ATTR_KEYS = ["ipc", "num_classes", "class_names", "seed", "condense_seconds", "teacher_seconds", "source_split",
             "method_config", "extra", "deviations", "storage_bytes", "kind", "format_version", "device"]


@FUZZ
@given(key=st.sampled_from(ATTR_KEYS), value=ATTR_VALUES)
def test_fuzz_root_attributes(tmp_path, key, value):
    p = _base(tmp_path)

    def fn(f):
        f.attrs[key] = value
    with h5py.File(p, "r+") as f:
        fn(f)
    reseal(p)
    s = _load_bounded(p)
    if s is not None:
        _assert_sound(s)


SHAPES = st.lists(st.integers(0, 12), min_size=0, max_size=5).map(tuple)
DTYPES = st.sampled_from(["uint8", "int64", "int32", "float32", "float16", "float64"])


@FUZZ
@given(name=st.sampled_from(["images", "labels", "soft_labels", "compensators/batch", "compensators/image_batch",
                             "compensators/teacher", "compensators/values", "compensators/scale"]),
       shape=SHAPES, dtype=DTYPES, fill=st.integers(-3, 300))
def test_fuzz_dataset_shapes(tmp_path, name, shape, dtype, fill):
    p = _base(tmp_path, compensators=name.startswith("compensators"))

    def fn(f):
        attrs = dict(f[name].attrs) if name in f else {}
        if name in f:
            del f[name]
        ds = f.create_dataset(name, data=np.full(shape, fill).astype(dtype))
        for k, v in attrs.items():
            ds.attrs[k] = v
        if name == "soft_labels":
            ds.attrs["policy"] = "static"
    s = _load_bounded(_edit(p, fn))
    if s is not None:
        _assert_sound(s)


@FUZZ
@given(batch=st.lists(st.integers(-2, 5), min_size=1, max_size=12),
       image_batch=st.lists(st.integers(-2, 5), min_size=8, max_size=8),
       teacher=st.one_of(st.none(), st.lists(st.integers(-1, 3), min_size=1, max_size=12)))
def test_fuzz_compensator_pairing(tmp_path, batch, image_batch, teacher):
    p = _base(tmp_path, compensators=True)

    def fn(f):
        g = f["compensators"]
        k = len(batch)
        for key, data in (("batch", np.array(batch)), ("image_batch", np.array(image_batch)),
                          ("values", np.zeros((k, 1, 6, 6), np.uint8)), ("scale", np.full(k, 0.01, np.float32)),
                          ("offset", np.zeros(k, np.float32))):
            del g[key]
            g.create_dataset(key, data=data)
        del g["teacher"]
        if teacher is not None:
            g.create_dataset("teacher", data=np.array(teacher))
    s = _load_bounded(_edit(p, fn))
    if s is not None:
        _assert_sound(s)
        assert s.num_instances() <= 8 * (1 + 2)  # images alone plus one composition per teacher at most


# ----------------------------------------------------------------------------- units behind the cases


def test_instance_pairs_match_brute_force():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        n, k = int(torch.randint(1, 12, (1,), generator=g)), int(torch.randint(0, 8, (1,), generator=g))
        ib, b = torch.randint(0, 4, (n,), generator=g), torch.randint(0, 5, (k,), generator=g)
        s = SyntheticSet(kind="images", method="x", ipc=1, num_classes=1, class_names=["0"], source_dataset="t",
                         source_fingerprint="", seed=0, labels=torch.zeros(n, dtype=torch.long),
                         compensators={"batch": b, "image_batch": ib})
        want = [(i, kk) for kk in range(k) for i in range(n) if ib[i] == b[kk]]
        i_idx, k_idx = s.instance_pairs()
        assert list(zip(i_idx.tolist(), k_idx.tolist())) == want
        assert s.num_instances() == n + len(want)


def test_repair_keeps_a_complete_record_without_newline(tmp_path):
    from condense import jsonl

    p = tmp_path / "r.jsonl"
    p.write_bytes(b'{"key": "a", "status": "ok"}')
    assert jsonl.repair(p) == 0 and p.read_bytes() == b'{"key": "a", "status": "ok"}\n'
    p.write_bytes(b'{"key": "a"}\n{"key": "b", "sta')
    assert jsonl.repair(p) == len(b'{"key": "b", "sta') and p.read_bytes() == b'{"key": "a"}\n'
    p.write_bytes(b'{"key": "a"}\n{"key": "b"}')
    assert [r["key"] for r in jsonl.read(p)[0]] == ["a", "b"]  # readers see it before any repair


def test_teacher_cache_loads_weights_only(tmp_path, monkeypatch, digits):
    """A planted pickle in the teacher cache never runs: it is refused, noted and rebuilt."""
    from condense import teachers

    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    recipe = teachers.TeacherRecipe.preset("tiny")
    t = teachers.train_teacher(digits["train"], "convnet_bn-w32", recipe, val=digits["val"])
    final = next((tmp_path / "cache" / "teachers").glob("*.pt"))
    marker = tmp_path / "ran"
    hostile.forgers.marker_pickle(final, marker)
    again = teachers.train_teacher(digits["train"], "convnet_bn-w32", recipe, val=digits["val"])
    assert not marker.exists() and not again.cached
    assert abs(again.val_acc - t.val_acc) < 1e-9  # the rebuild is the same seeded training
    assert teachers.train_teacher(digits["train"], "convnet_bn-w32", recipe, val=digits["val"]).cached


def test_evaluate_refuses_wrong_test_data(digits):
    from condense.evaluate import evaluate
    from condense.methods import create_condenser

    s = create_condenser("random").condense(digits["train"], 2, seed=0)
    for split, match in (("train", "'test' split"), ("val", "'test' split")):
        with pytest.raises(ValueError, match=match):
            evaluate(s, digits[split], seeds=[0])
    with pytest.raises(ValueError, match="protocol 'graph' trains on graphs"):
        evaluate(s, digits["test"], protocol="graph", seeds=[0])
    wide = s.with_meta(images=s.images.repeat(1, 3, 1, 1), mean=(0.3,) * 3, std=(0.3,) * 3)
    with pytest.raises(ValueError, match="images are 3×8×8"):
        evaluate(wide, digits["test"], seeds=[0])
    more = s.with_meta(num_classes=20, class_names=[str(i) for i in range(20)])
    with pytest.raises(ValueError, match="20 classes"):
        evaluate(more, digits["test"], seeds=[0])


def test_configs_name_field_and_range():
    from condense.methods import create_condenser
    from condense.protocols import get_protocol

    with pytest.raises(ValueError, match=r"rs2.rounds must be an integer in \[1, 10,000,000\], got 0"):
        create_condenser("rs2", rounds=0)
    with pytest.raises(ValueError, match=r"herding.train_epochs must be an integer in \[0, 100,000\], got 'abc'"):
        create_condenser("herding", train_epochs="abc")
    with pytest.raises(ValueError, match=r"protocol dc.epochs must be an integer in \[1, 1,000,000\], got -1"):
        get_protocol("dc", epochs=-1)
    with pytest.raises(ValueError, match="infer.teachers: unknown model 'nosuch'"):
        create_condenser("infer", teachers=["nosuch"])
    assert create_condenser("infer", lr=1).config.lr == 1.0  # an integer widens to a float
