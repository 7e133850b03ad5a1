"""The sweep's typed spec: one frozen dataclass from which the command line, the sweep-file reader and
the Python API (:func:`benchmarks.run_sweep`) are all generated.

A field's type and :class:`condense.checks.Rule` check a value wherever it comes from (``--ipc 0``,
``ipc = "ten"`` in a sweep file, ``run_sweep(ipc=[0])``), with one error naming the field and the file.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from condense.checks import Rule, check_config
from condense.configs import DIGITS_REPLAY_EPOCHS

from . import __doc__ as doc

DEFAULT_DATASETS = ("digits", "MUTAG")
# The main job (no --methods, no --protocol) also shows the soft-label methods under the protocols their papers
# validate with, each beside the soft-label random baseline (random-kd: random real images, the same teacher's
# labels): CV-DD and SRe2L++ under fkd (their BSSL replay labels, as the papers train), INFER under kd. Per
# dataset: (protocol, methods, protocol fields). These students distil at T = 20-30 without the T^2 factor and
# learn slowly: on digits kd needs about 2,000 steps (1,000 epochs of 100 images) to separate INFER from
# random-kd (at 500 epochs INFER sits at 37 %); fkd keeps CV-DD > SRe2L++ > random-kd at half its official 300
# epochs (150: 37.5, 34.7, 19.2 %; 300: 45.8, 42.8, 27 %), and the digits sets store replay labels for those
# epochs (condense.configs.DIGITS_REPLAY_EPOCHS); so that the main job stays short, these tables train the first
# set seed only.
NATIVE_TABLES: dict[str, tuple[tuple[str, tuple[str, ...], tuple[tuple[str, object], ...]], ...]] = {
    "digits": (("fkd", ("random-kd", "cvdd", "sre2l++"), (("epochs", DIGITS_REPLAY_EPOCHS),)),
               ("kd", ("random-kd", "infer"), (("epochs", 1000),))),
}
TRAIN_SEED_BASE = 1 << 62   # set seeds stay below it; training seeds are drawn above it
FILE_ONLY = ("config",)     # fields a sweep file cannot set


def opt(default, help: str, *, rule: Rule | None = None, metavar: str | None = None, flag: str | None = None):
    """A spec field: its default, its ``--help`` line, the rule its values obey, and its flag."""
    return field(default=default, metadata={"help": help, "rule": rule, "metavar": metavar, "flag": flag})


@dataclass(frozen=True)
class SweepSpec:
    """One sweep: a field per option of ``python -m benchmarks.run`` (lists as tuples); ``overrides`` is
    ``--set METHOD.FIELD=VALUE`` (a sweep file's ``[set.METHOD]`` tables; the API also takes
    ``{method: {field: value}}``)."""

    config: Path | None = opt(None, "a sweep file: every option below as a key, [set.METHOD] tables for condenser "
                                    "fields, [[run]] tables for several sweeps; flags given here override it",
                              metavar="SWEEP.toml")
    ipc: tuple[int, ...] = opt((10,), "images (graphs) per class; several allowed", rule=Rule(lo=1, nonempty=True))
    datasets: tuple[str, ...] | None = opt(None, "default: digits and MUTAG (both ship with the package)",
                                           rule=Rule(nonempty=True))
    methods: tuple[str, ...] | None = opt(None, "default: every condenser that applies", rule=Rule(nonempty=True))
    archs: tuple[str, ...] | None = opt(None, "default: the dataset config's architectures", rule=Rule(nonempty=True))
    seeds: tuple[int, ...] = opt((0, 1, 2), "set seeds, in [0, 2^62)",
                                 rule=Rule(lo=0, hi=TRAIN_SEED_BASE, hi_open=True, nonempty=True))
    protocol: str | None = opt(None, "default: the dataset config's (dc for images, graph for graphs)")
    preset: str = opt("quick", "protocol and condenser preset (quick: DC 300 epochs without augmentation)",
                      rule=Rule(choices=("quick", "paper")))
    epochs: int | None = opt(None, "override the protocol's epochs (RS2: rounds)")
    batch_size: int | None = opt(None, "override the protocol's batch size")
    fraction: float | None = opt(None, "RS2 selection-ratio mode: each round draws this fraction of the training "
                                       "split", rule=Rule(lo=0, hi=1, lo_open=True))
    frequency_mode: str | None = opt(None, "graph protocol: how Mirage pattern frequencies are used (default: "
                                           "proportional)", rule=Rule(choices=("proportional", "once")))
    checkpoints: int | None = opt(None, "test-accuracy checkpoints per run (protocol default 50: every 2%% of steps)")
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    precision: str | None = opt(None, "students' arithmetic: fp32 (the protocols' default), bf16 (forward and loss "
                                      "under bfloat16 autocast) or tf32 (on a GPU); each its own table",
                                rule=Rule(choices=("fp32", "bf16", "tf32")))
    curve: str = opt("screened", "test curve: screened (default; each target's time-to-accuracy the exhaustive "
                                 "curve's with probability >= 99.9 %%) or full (every checkpoint on the whole test "
                                 "set); each its own table", rule=Rule(choices=("screened", "full")))
    out: Path = opt(Path("runs/default"), "the results folder (results.jsonl, sets/, the leaderboard)")
    data_root: str | None = opt(None, "data root (default $CONDENSE_DATA)")
    retry_failed: bool = opt(False, "run cells recorded as failed again")
    stop_at_targets: bool = opt(False, "end each training run once it reaches the highest TTA target (reference "
                                       "runs for time-to-accuracy; their accuracy is then marked as not final)")
    no_progress: bool = opt(False, "no progress bars")
    compile: bool = opt(False, "train image students through torch.compile (pays on long CPU and GPU runs; compile "
                               "time counts as training time; such rows form their own tables)")
    overrides: tuple[str, ...] = opt((), "override a condenser config field, e.g. --set herding.train_epochs=5",
                                     metavar="METHOD.FIELD=VALUE", flag="--set")
    train_seeds: int = opt(1, "training seeds per set (a run is a set seed and a training seed; default 1)",
                           rule=Rule(lo=1, hi=1000), metavar="K")
    together: int = opt(1, "train up to K training seeds of one set as one stacked ConvNet (image protocols; the "
                           "same runs, each seed's seconds the stack's / K; such rows form their own tables)",
                        rule=Rule(lo=1, hi=1000), metavar="K")
    jobs: int = opt(0, "local executor: run sets in this many worker processes at once, each with its share of "
                       "the torch threads (this driver the only writer); 1: one set after another here; 0 (the "
                       "default): one process per core when at least 4 sets per core are pending, else 1",
                    rule=Rule(lo=0, hi=256), metavar="N")
    executor: str = opt("local", "local (default): one set after another in this process; ray: each set a Ray "
                                 "task (pip install -e '.[ray]'), this driver the only writer",
                        rule=Rule(choices=("local", "ray")))
    address: str | None = opt(None, "ray: join the cluster started with `ray start --head` (default: a local "
                                    "instance)", metavar="HOST:PORT")
    ray_cpus: int | None = opt(None, "ray without --address: CPUs of the local instance (default: all)",
                               rule=Rule(lo=1, hi=100_000), metavar="N")
    cpus_per_cell: float = opt(1.0, "ray: CPUs per task (torch threads)", rule=Rule(lo=0, hi=4096, lo_open=True),
                               metavar="N")
    gpus_per_cell: float = opt(0.0, "ray: GPUs per task", rule=Rule(lo=0, hi=64), metavar="N")
    budget: str | None = opt(None, "steps (default): every row trains the steps of the plain IPC×C set; epochs: "
                                   "every set trains the protocol's epochs over its own items (a paper's own "
                                   "protocol, labelled)", rule=Rule(choices=("steps", "epochs")))
    full_budget: str = opt("auto", "the whole split (full) trains at each table's step budget; 'own' also trains it "
                                   "to its protocol's own budget (a labelled row of IPC 'all'); 'auto': 'own' on "
                                   "graph datasets, 'table' on image datasets",
                           rule=Rule(choices=("table", "own", "auto")))
    imports: tuple[str, ...] = opt((), "add a released set to the sweep: KIND:PATH[:NAME] (dc, mtt or folder; "
                                        "docs/importing.md), a row imported:KIND:NAME at the release's own IPC; "
                                        "several allowed; sweep-file key: import",
                                   metavar="KIND:PATH[:NAME]", flag="--import")
    no_train: bool = opt(False, "never train what a method caches (MTT's expert trajectories): a missing one is a "
                                "one-line error")
    scores: bool = opt(False, "also run the cells the DD-Ranking scores (HLR, IOR, LRS, ARS) of each method still "
                              "lack")

    def __post_init__(self):
        for name in ("config", "out"):
            v = getattr(self, name)
            if isinstance(v, str):
                object.__setattr__(self, name, Path(v))
            elif v is not None and not isinstance(v, Path):
                raise ValueError(f"sweep.{name} must be a path, got {v!r}")
        check_config(self, "sweep", **{f.name: f.metadata["rule"] for f in dataclasses.fields(self)
                                       if f.metadata.get("rule") is not None})

    @classmethod
    def from_mapping(cls, values: dict, where: str, base: "SweepSpec | None" = None) -> "SweepSpec":
        """The defaults (or ``base``) with ``values`` applied: a sweep file's keys (``set`` for
        ``overrides``, dashes or underscores) or the API's keywords. An unknown key or a bad value is
        one error naming it and ``where``."""
        names, hints = {f.name for f in dataclasses.fields(cls)}, typing.get_type_hints(cls)
        out = {} if base is None else {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}
        for key, value in values.items():
            name = {"set": "overrides", "import": "imports"}.get(key, key.replace("-", "_"))
            if name not in names:
                known = sorted((names - {"overrides", "imports"}) | {"set", "import"})
                raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
            if name == "overrides":
                value = overrides_list(value, where)
            elif _scalar(hints[name])[1] and isinstance(value, (int, float, str)) and not isinstance(value, bool):
                value = (value,)          # ``ipc = 10`` in a sweep file is ``--ipc 10``
            out[name] = value
        try:
            return cls(**out)
        except ValueError as e:
            raise ValueError(f"{where}: {str(e).removeprefix('sweep.')}") from None

    def replace(self, **changes) -> "SweepSpec":
        return dataclasses.replace(self, **changes)


def overrides_list(value, where: str) -> tuple[str, ...]:
    """``--set`` items from a list of ``METHOD.FIELD=VALUE`` strings or a ``{method: {field: value}}`` table."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError(f"{where}: set must be a table of method tables ([set.METHOD] FIELD = VALUE)")
    return tuple(f"{m}.{f}={json.dumps(v)}" for m, fields in value.items() for f, v in fields.items())


def _scalar(tp):
    """The element type of a field's annotation (``tuple[int, ...] | None`` -> int, nargs '+')."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is tuple:
        return typing.get_args(tp)[0], "+"
    return tp, None


def build_parser(suppress: bool = False) -> argparse.ArgumentParser:
    """The command line, generated from :class:`SweepSpec` (``suppress``: absent flags are left out of
    the result, so that only the flags given override a sweep file)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 argument_default=argparse.SUPPRESS if suppress else None)
    hints = typing.get_type_hints(SweepSpec)
    for f in dataclasses.fields(SweepSpec):
        meta, tp = f.metadata, hints[f.name]
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kw = {"help": meta["help"], "dest": f.name}
        if not suppress:
            kw["default"] = list(default) if isinstance(default, tuple) else default
        if tp is bool:
            ap.add_argument(flag, action="store_true", **kw)
            continue
        elem, nargs = _scalar(tp)
        if f.name == "overrides":
            ap.add_argument(flag, action="append", metavar=meta["metavar"], **kw)
            continue
        kw.update(type=elem if elem in (int, float, Path) else str, nargs=nargs)
        if meta["metavar"]:
            kw["metavar"] = meta["metavar"]
        rule = meta["rule"]
        if rule is not None and rule.choices is not None:
            kw["choices"] = rule.choices
        ap.add_argument(flag, **kw)
    return ap


def parse_args(argv=None) -> SweepSpec:
    """The spec of one sweep from the command line alone (:func:`sweep_specs` adds a sweep file)."""
    ns = vars(build_parser().parse_args(argv))
    return SweepSpec.from_mapping(ns, "command line")


def read_sweep_file(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such sweep file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a TOML sweep file ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read the sweep file ({e.strerror or e})") from None


def sweep_specs(argv=None) -> list[SweepSpec]:
    """The sweeps a command line asks for: one, or with ``--config`` one per ``[[run]]`` table of the
    file (top-level keys are shared; a run's keys replace them, its ``[set.METHOD]`` fields are added).
    Flags given on the command line override the file in every run. ``[[expect]]`` tables (the bands of
    a reference configuration, ``condense/references/``) are left to ``python -m condense verify``."""
    cli = parse_args(argv)
    if cli.config is None:
        return [cli]
    given = vars(build_parser(suppress=True).parse_args(argv))
    doc = read_sweep_file(cli.config)
    doc.pop("expect", None)  # a reference configuration's bands, read by `python -m condense verify`
    runs = doc.pop("run", [{}])
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise ValueError(f"{cli.config}: 'run' must be one or more [[run]] tables")
    for key in FILE_ONLY:
        if key in doc or any(key in r for r in runs):
            raise ValueError(f"{cli.config}: unknown key {key!r} (a sweep file cannot name another)")
    out = []
    for i, run in enumerate(runs):
        where = f"{cli.config}" + (f" [[run]] {i + 1}" if len(runs) > 1 else "")
        if "run" in run:
            raise ValueError(f"{where}: unknown key 'run' (runs do not nest)")
        shared_set = doc.get("set", {})
        merged = {**doc, **run}
        if "set" in run and isinstance(shared_set, dict) and isinstance(run["set"], dict):
            merged["set"] = {m: {**shared_set.get(m, {}), **run["set"].get(m, {})}
                             for m in {**shared_set, **run["set"]}}
        spec = SweepSpec.from_mapping(merged, where)
        flags = {k: v for k, v in given.items() if k not in ("config", "overrides")}
        spec = SweepSpec.from_mapping(flags, "command line", base=spec)
        out.append(spec.replace(overrides=spec.overrides + tuple(given.get("overrides", ())), config=cli.config))
    return out


#: fields a cell's own command does not repeat: the cell sets them, or they change where and how it runs,
#: never what it computes
CELL_FIELDS = ("config", "datasets", "methods", "ipc", "seeds", "archs", "out", "data_root", "retry_failed",
               "no_progress", "jobs", "executor", "address", "ray_cpus", "cpus_per_cell", "gpus_per_cell", "overrides")


def cell_command(spec: SweepSpec, dataset: str, method: str, ipc: int | None, seed: int, arch: str) -> str:
    """The command that runs exactly this cell on its own: its dataset, method, IPC, set seed and
    architecture, every option of ``spec`` that differs from the default, and the ``--set`` overrides of
    its method (a record keeps it, so a reader can rerun one row)."""
    parts = ["python", "-m", "benchmarks.run", "--datasets", dataset, "--methods", method]
    parts += (["--ipc", str(ipc)] if ipc else []) + ["--seeds", str(seed), "--archs", arch]
    for f in dataclasses.fields(SweepSpec):
        if f.name in CELL_FIELDS:
            continue
        value, default = getattr(spec, f.name), f.default
        if value == default or value is None:
            continue
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, tuple):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    for item in spec.overrides:
        if str(item).split(".", 1)[0] == method:
            parts += ["--set", str(item)]
    return shlex.join(parts)
