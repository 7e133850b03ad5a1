"""The hostile harness runs a case's child as a fresh interpreter would, whether it forks it from the
zygote (the shared imports done once) or starts a new process."""
from __future__ import annotations

import json
import time

import pytest

from .hostile import harness


def _both(argv, tmp_path, env, timeout=60.0):
    assert harness._zygote() is not None
    out = {}
    for way in ("zygote", "fresh"):
        d = tmp_path / way
        d.mkdir()
        with pytest.MonkeyPatch.context() as mp:
            if way == "fresh":
                mp.setattr(harness, "_ZYGOTE", [None])
            started = harness._start(argv, d, env, readonly=False)
        assert (type(started[0]).__name__ == "Forked") == (way == "zygote")
        code, stdout, stderr, timed_out, rss = harness._finish(started, timeout)
        seen = json.loads(stdout.splitlines()[0]) if stdout.strip() else None
        out[way] = (code, seen, stderr, timed_out, rss is not None, d)
    return out


def test_a_forked_case_sees_what_a_fresh_interpreter_sees(tmp_path):
    runs = _both(["-m", "tests.hostile.echo", "3", "x y"], tmp_path, {"CONDENSE_MAX_SET_BYTES": "123"})
    for way, (code, seen, stderr, timed_out, has_rss, d) in runs.items():
        assert code == 3 and not timed_out and has_rss, way
        assert stderr.strip() == "error: echo", way
        assert seen["cwd"] == str(d) and seen["argv"] == ["3", "x y"] and seen["name"] == "__main__", way
        assert seen["env"]["CONDENSE_MAX_SET_BYTES"] == "123", way


def test_a_forked_case_that_hangs_is_killed_with_its_session(tmp_path):
    t0 = time.perf_counter()
    runs = _both(["-m", "tests.hostile.echo", "sleep"], tmp_path, {}, timeout=5.0)
    assert time.perf_counter() - t0 < 60
    for way, (code, seen, stderr, timed_out, has_rss, d) in runs.items():
        assert timed_out and code != 0, way


def test_a_case_with_a_foreign_variable_runs_in_a_fresh_interpreter():
    z = harness._zygote()
    base = harness._env({})
    assert z.can_run({**base, "CONDENSE_CACHE": "/elsewhere"})
    assert not z.can_run({**base, "OMP_NUM_THREADS": "7"})


@pytest.mark.parametrize("code", [0, 1])
def test_exit_status_passes_through(tmp_path, code):
    runs = _both(["-m", "tests.hostile.echo", str(code)], tmp_path, {})
    assert runs["zygote"][0] == runs["fresh"][0] == code
