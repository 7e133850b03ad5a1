"""Run a method's official code and ours on the same inputs, and print them side by side.

    python -m benchmarks.crosscheck METHOD --official DIR [--out DIR] [options]

``DIR`` is a checkout of the official repository that you made (``git clone``); the suite never
downloads it and never copies its code here. Edits needed to run it on CPU with today's libraries
are made on a temporary copy by named substitutions, each printed (``docs/crosscheck.md`` lists them).
The table, the official commit and the command go to ``--out`` (default
``results/crosscheck/METHOD``). Adapters: ``mirage``, ``dc-evaluator``.
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from condense._log import one_line, say
from condense._paths import atomic_write

from .harness import CrosscheckError, deviations, judge, official_commit, table

ADAPTERS = {"mirage": "benchmarks.crosscheck.mirage", "dc-evaluator": "benchmarks.crosscheck.dc_evaluator"}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.crosscheck", description=__doc__.split("\n\n")[0])
    ap.add_argument("method", help=f"the adapter: {', '.join(ADAPTERS)}")
    ap.add_argument("--official", type=Path, required=True, help="your checkout of the method's official code")
    ap.add_argument("--out", type=Path, default=None, help="where the table goes (default results/crosscheck/METHOD)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="dc-evaluator: training seeds")
    ap.add_argument("--epochs", type=int, default=None, help="dc-evaluator: training epochs (default 300)")
    ap.add_argument("--set", default=None, help="dc-evaluator: a hard-label image set (.h5); default digits random IPC 10")
    ap.add_argument("--datasets", nargs="+", default=None, help="mirage: MUTAG, NCI1 (default both)")
    ap.add_argument("--archs", nargs="+", default=None, choices=("gcn", "gin"), help="mirage: default gcn")
    ap.add_argument("--supports", nargs="+", default=None, metavar="A/B",
                    help="mirage: support steps, class 0/class 1 (default the official steps of each dataset)")
    ap.add_argument("--timeout", type=float, default=7200.0, help="mirage: seconds for one official run")
    return ap


def adapter(method: str):
    if method not in ADAPTERS:
        raise ValueError(f"no crosscheck adapter for {method!r}; available: {', '.join(ADAPTERS)}")
    return importlib.import_module(ADAPTERS[method])


def crosscheck(method: str, official: Path, options) -> tuple[list, dict]:
    """Every probe of ``method``'s adapter, judged, and the inputs it ran on."""
    mod = adapter(method)
    probes, inputs = mod.run(Path(official), options)
    return [judge(p) for p in probes], {**inputs, "official": mod.OFFICIAL, "commit": official_commit(official)}


def shown_command(argv: list[str], official: str) -> str:
    """The command as run, the checkout's place replaced by what it is (a path on one machine means
    nothing on another)."""
    out, skip = [], False
    for a in argv:
        if skip:
            out.append(f"<your checkout of {official}>")
            skip = False
        elif a == "--official":
            out.append(a)
            skip = True
        elif a.startswith("--official="):
            out.append(f"--official=<your checkout of {official}>")
        else:
            out.append(shlex.quote(a))
    return "python -m benchmarks.crosscheck " + " ".join(out)


def write(out: Path, method: str, probes, inputs: dict, argv: list[str], substitutions) -> str:
    text = "\n".join([
        f"# Crosscheck: {method}", "",
        f"Official code: {inputs['official']} at commit {inputs['commit']} (a local checkout; nothing of it is "
        "in this repository).", "",
        f"Command: `{shown_command(argv, inputs['official'])}`", "",
        f"Made {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Inputs: "
        + "; ".join(f"{k}: {v}" for k, v in inputs.items() if k not in ("official", "commit")), "",
        "Substitutions made on a temporary copy of the official code:", "",
        *[f"- `{s.name}` ({s.file}): {s.why}" for s in substitutions], "",
        table(probes), "",
        ("Deviations: " + "; ".join(deviations(probes)) + ".") if deviations(probes) else "No deviation found.", ""])
    atomic_write(out / "crosscheck.md", data=text.encode())
    return text


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.say = say
    try:
        mod = adapter(args.method)
        probes, inputs = crosscheck(args.method, args.official, args)
    except (ValueError, CrosscheckError, OSError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    out = args.out or Path("results/crosscheck") / args.method
    subs = getattr(mod, "SUBSTITUTIONS", ())
    print(write(out, args.method, probes, inputs, argv, subs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
