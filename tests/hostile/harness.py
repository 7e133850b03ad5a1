"""The harness: run a case in a child process, classify its outcome, tabulate the outcomes."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path


from .model import CASES, CODE_ROOT, OUTCOMES, Invocation, Result
from .zygote import Zygote




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


_ZYGOTE: list = []


def _zygote():
    """The shared forking process (:mod:`.zygote`), started on first use; None where it cannot start or
    ``HOSTILE_ZYGOTE=0`` asks for a fresh interpreter per case."""
    if not _ZYGOTE:
        try:
            _ZYGOTE.append(None if os.environ.get("HOSTILE_ZYGOTE") == "0" else Zygote(LAUNCH, _env({})))
        except OSError:
            _ZYGOTE.append(None)
    return _ZYGOTE[0]


def _start(argv, d: Path, env: dict, readonly: bool):
    rss_file = d / f".rss-{time.monotonic_ns()}"
    e = _env({**env, "HOSTILE_RSS_FILE": str(rss_file)})
    z = _zygote() if argv[0] == "-m" and not readonly else None
    if z is not None and z.can_run(e):
        return z.start(argv[1:], d, e), rss_file
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


def one_line_error(err: str) -> bool:
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
        if all(one_line_error(r[2]) for r in runs if r[0] != 0):
            return "clean error", tail
        return "traceback", f"not a one-line error: {tail}"
    refused = [r for r in runs if r[0] != 0]
    if inv.refusal and len(refused) < len(runs) and all(
            one_line_error(r[2]) and inv.refusal in r[2] for r in refused):
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
