"""A process that has imported the heavy libraries once and forks one child per hostile case.

Importing torch, torch_geometric, h5py and scipy takes most of a case's seconds on a small CPU, and it
is the same for every case. The zygote imports them (nothing of this project: its modules read their
settings at import), then for each request forks a waiter in a new session, which forks the case's
child and records its exit status. The child sets its own working folder, environment and standard
streams and runs the case's module as ``python -c LAUNCH ...`` would; the harness sees a handle
that behaves like :class:`subprocess.Popen` (``pid`` is the session's, so ``killpg`` ends the case and
everything it started). A case the zygote cannot run as the interpreter would (dropped capabilities,
an environment beyond the project's own variables) runs through ``subprocess`` as before.
"""
from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZYGOTE = r'''
import json, os, signal, sys
import h5py, numpy, scipy.special, torch, torch_geometric.data  # noqa: F401  (the shared imports)
LAUNCH = sys.argv[1]
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the zygote never waits: waiters are reaped at once
print("ready", flush=True)


def child(req):
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        os.dup2(os.open(path, flags, 0o644), fd)
    sys.argv = ["-c", *req["argv"]]
    exec(compile(LAUNCH, "<string>", "exec"), {"__name__": "__main__"})
    sys.exit(0)


for line in sys.stdin:
    req = json.loads(line)
    r, w = os.pipe()
    if os.fork() == 0:  # the waiter: a session of its own, so that killpg ends the case's whole tree
        os.close(r)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            child(req)  # leaves through SystemExit (or a traceback), as an interpreter would
        os.write(w, b"%d\n" % os.getpgid(0))
        os.close(w)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        with open(req["status"] + ".tmp", "w") as f:
            f.write(str(code))
        os.replace(req["status"] + ".tmp", req["status"])
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        sys.stdout.write(f.readline())
    sys.stdout.flush()
'''


AFTER_KILL = 5.0


class Forked:
    """A child of the zygote, as much of :class:`subprocess.Popen` as the harness uses."""

    def __init__(self, pid: int, folder: Path):
        self.pid = pid
        self.returncode: int | None = None
        self._folder = folder

    def communicate(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        """Wait for the exit status (``TimeoutExpired`` after ``timeout`` s); with no timeout (the
        harness asks so only after killing the session) wait at most ``AFTER_KILL`` s."""
        status = self._folder / "status"
        deadline = time.monotonic() + (AFTER_KILL if timeout is None else timeout)
        while not status.exists():
            if time.monotonic() > deadline:
                if timeout is None:
                    break
                raise subprocess.TimeoutExpired("zygote child", timeout)
            time.sleep(0.02)
        self.returncode = int(status.read_text()) if status.exists() else -9
        out, err = (self._folder / "stdout").read_bytes(), (self._folder / "stderr").read_bytes()
        shutil.rmtree(self._folder, ignore_errors=True)
        return out, err


class Zygote:
    def __init__(self, launch: str, env: dict):
        self._env = dict(env)
        self._proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, launch], env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        if self._proc.stdout.readline() != "ready\n":
            raise OSError("the zygote could not import the shared libraries")
        self._count = 0
        self._files = Path(tempfile.mkdtemp(prefix="zygote-"))  # the children's streams, outside the cases' folders
        atexit.register(self.close)

    def can_run(self, env: dict) -> bool:
        """Whether a case with this environment runs as it would under a fresh interpreter: only the
        project's own variables (read at run time, never by the shared imports) may differ."""
        keys = set(env) | set(self._env)
        return all(env.get(k) == self._env.get(k) or k.startswith(("CONDENSE_", "HOSTILE_", "PYTEST_")) for k in keys)

    def start(self, module_argv: list[str], cwd: Path, env: dict) -> Forked:
        """Run ``python -m MODULE ARGS`` (``module_argv``: MODULE and ARGS) in ``cwd`` with ``env``."""
        self._count += 1
        folder = self._files / str(self._count)
        folder.mkdir()
        req = {"argv": module_argv, "cwd": str(cwd), "env": env, "stdout": str(folder / "stdout"),
               "stderr": str(folder / "stderr"), "status": str(folder / "status")}
        self._proc.stdin.write(json.dumps(req) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the zygote ended")
        return Forked(int(line), folder)

    def close(self):
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
        shutil.rmtree(self._files, ignore_errors=True)
