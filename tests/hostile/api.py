"""API cases: one library call in a child process (``python -m tests.hostile api NAME ...``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


from .forgers import digits_set

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
