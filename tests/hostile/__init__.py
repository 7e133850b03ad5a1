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

The package: ``model`` (a case, a result, the registry), ``forgers`` (crafted inputs), the cases by
surface (``cases_caches``, ``cases_files``, ``cases_runs``), ``api`` (library calls) and ``harness``.
``tests/test_hostile.py`` runs every case under pytest. Cases that need read-only folders run the
child without CAP_DAC_OVERRIDE when the tests run as root (root ignores permission bits otherwise).
"""
from . import cases_caches, cases_files, cases_import, cases_runs, cases_v3  # noqa: F401  (registration)
from .harness import one_line_error, report, run_case
from .model import CASES, OUTCOMES, Invocation, Result

__all__ = ["CASES", "OUTCOMES", "Invocation", "Result", "one_line_error", "report", "run_case"]
