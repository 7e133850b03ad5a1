"""Benchmarks of the condense suite: the sweep (``python -m benchmarks.run`` or :func:`run_sweep`),
the leaderboard, and the speed benchmarks."""


def __getattr__(name):
    if name in ("run_sweep", "SweepSpec"):  # imported on use: ``import benchmarks`` stays light
        from . import api  # on use: the sweep loads torch, and `import benchmarks` (the report) must not

        return getattr(api, name)
    raise AttributeError(f"module 'benchmarks' has no attribute {name!r}")


__all__ = ["run_sweep", "SweepSpec"]
