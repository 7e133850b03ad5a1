"""Planning a sweep: which datasets, methods, protocols and seeds make its cells, and each cell's
condenser; nothing here trains or writes."""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math

from condense._log import say
from condense.checks import parse_value
from condense.configs import dataset_config
from condense.data import IMAGE_DATASETS, KNOWN_TU, DatasetNotFoundError, availability, dataset_kind, load_dataset
from condense.methods import condenser_class, create_condenser, default_condensers, role_method
from condense.methods.imported import register_release
from condense.models import model_kind
from condense.protocols import for_cell, get_protocol

from .spec import DEFAULT_DATASETS, NATIVE_TABLES, TRAIN_SEED_BASE, SweepSpec


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def clean(obj):
    """JSON-safe: NaN/Inf become None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def parse_overrides(items) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in items:
        try:
            lhs, value = item.split("=", 1)
            method, field = lhs.split(".", 1)
        except ValueError:
            raise ValueError(f"--set expects METHOD.FIELD=VALUE, got {item!r}") from None
        out.setdefault(method, {})[field] = parse_value(value)
    return out




def train_seed(set_seed: int, k: int) -> int:
    """The ``k``-th training seed of a set: drawn from its own stream, in ``[2^62, 2^63)`` while set
    seeds stay below ``2^62``, so a training seed never coincides with a set seed."""
    digest = hashlib.sha256(f"condense-train-seed:{set_seed}:{k}".encode()).digest()
    return TRAIN_SEED_BASE | (int.from_bytes(digest[:8], "big") & (TRAIN_SEED_BASE - 1))


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run: a set (dataset, method, set IPC, set seed) trained with one training seed
    under one protocol, at the step budget of ``ipc`` (for ``full`` under the steps budget: the
    table's IPC, while the set itself is the whole split)."""

    dataset: str
    method: str
    ipc: int
    seed: int
    train_seed: int
    protocol: object
    set_ipc: int

    @property
    def label(self) -> str:
        return (f"{self.dataset} {self.method} ipc={self.ipc} set seed={self.seed} "
                f"train seed={self.train_seed} {self.protocol.name}")


class Planner:
    """What a sweep runs, from its spec alone (the driver's :class:`Sweep` adds the folder and the work)."""

    def __init__(self, args: SweepSpec):
        self.args = args
        self.overrides = parse_overrides(args.overrides)
        if args.fraction is not None:
            self.overrides.setdefault("rs2", {})["fraction"] = args.fraction
        self.existing: list[dict] = []
        self.skipped: list[str] = []   # dataset names that could not be planned


    def datasets(self) -> list[str]:
        names = self.args.datasets or list(DEFAULT_DATASETS)
        keep = []
        for name in names:
            try:
                av = availability(name, self.args.data_root)
            except Exception as e:  # noqa: BLE001 - report any lookup failure as a skip
                say(f"skip {name}: {e}")
                self.skipped.append(name)
                continue
            if av["available"]:
                keep.append(name)
            elif self.args.datasets is None and name != "digits":
                say(f"skip {name}: not available (set CONDENSE_DATA to a folder holding it)")
            else:
                keep.append(name)  # asked for explicitly: loading reports exactly what is missing
        return keep

    def methods_for(self, kind: str, protocol) -> list[str]:
        if self.args.methods is None:
            return default_condensers(kind, protocol)
        keep = []
        for m in self.args.methods:
            cls = condenser_class(m)  # unknown method: a clear error, before any work
            if kind in cls.kinds:
                keep.append(m)
            else:
                say(f"skip method {m} on {kind} datasets: it handles {', '.join(cls.kinds)}")
        return keep

    def protocol(self, kind: str, dataset: str, name: str | None = None, **extra):
        cfg = dataset_config(dataset, kind)
        name = name or self.args.protocol or cfg.protocol
        over = dict(cfg.quick_protocol) if self.args.preset == "quick" else {}
        if self.args.epochs is not None:
            over["epochs"] = self.args.epochs
        if self.args.checkpoints is not None:
            over["checkpoints"] = self.args.checkpoints
        if self.args.batch_size is not None:
            over["batch_size"] = self.args.batch_size
        if self.args.precision is not None:
            over["precision"] = self.args.precision
        if self.args.frequency_mode is not None and kind == "graphs":
            over["frequency_mode"] = self.args.frequency_mode
        if getattr(self.args, "budget", None):
            over["budget"] = self.args.budget
        return get_protocol(name, self.args.preset, **{**over, **extra})

    def cells(self, name: str, kind: str, protocol, methods: list[str], ipcs: list[int]) -> list[Cell]:
        """Every training run of these methods: set seeds × training seeds; a deterministic condenser
        is condensed once (the first set seed) and trained as many times as the others."""

        out = []
        k = self.args.train_seeds
        for method in methods:
            cls = condenser_class(method)
            if cls.uses_ipc:
                budgets = [(i, i) for i in ipcs]
            elif protocol.budget == "steps":
                budgets = [(i, 0) for i in ipcs]      # the whole split at each table's step budget,
                if self.args.full_budget == "own" or (self.args.full_budget == "auto" and kind == "graphs"):
                    budgets.append((0, 0))            # and, labelled, at its protocol's own (IPC "all")
            else:
                budgets = [(0, 0)]
            for ipc, set_ipc in budgets:
                p = protocol if self.args.batch_size is not None else for_cell(protocol, name, ipc)
                for s in self.args.seeds:
                    set_seed = self.args.seeds[0] if cls.deterministic else s
                    for j in range(k):
                        out.append(Cell(name, method, ipc, set_seed, train_seed(s, j), p, set_ipc))
        return out

    def native_cells(self, name: str, kind: str) -> list[Cell]:
        """The main job's own-protocol tables (:data:`NATIVE_TABLES`), on the first set seed: only when
        the sweep names neither methods nor a protocol. Their fields size the ``quick`` preset; ``--epochs``
        replaces their epochs too."""
        if self.args.methods is not None or self.args.protocol is not None:
            return []
        out = []
        for pname, methods, fields in NATIVE_TABLES.get(name, ()):
            extra = {k: v for k, v in fields if self.args.preset == "quick"
                     and not (k == "epochs" and self.args.epochs is not None)}
            cells = self.cells(name, kind, self.protocol(kind, name, pname, **extra), list(methods), self.args.ipc)
            out += [c for c in cells if c.seed == self.args.seeds[0]]
        return out

    def score_protocols(self, kind: str, name: str, base) -> dict[str, object]:
        """The protocols the DD-Ranking scores read (``--scores``): the hard-label one (dc), the
        soft-label one (kd), and each with the augmentation switched (ARS)."""
        hard = base if base.loss == "ce" and base.name == "dc" else self.protocol(kind, name, "dc")
        soft = base if base.loss == "kd" else self.protocol(kind, name, "kd")
        return {"hard": hard, "soft": soft, "hard-aug": aug_variant(hard), "soft-aug": aug_variant(soft)}

    def plan(self) -> list[tuple[Cell, list[str]]]:
        plan = []
        self.data = {}
        for name in self.datasets():
            kind = dataset_kind(name)
            try:
                train = load_dataset(name, "train", root=self.args.data_root)
                test = load_dataset(name, "test", root=self.args.data_root)
                val = load_dataset(name, "val", root=self.args.data_root) if kind == "graphs" else None
            except DatasetNotFoundError as e:
                say(f"skip {name}: {e}")
                self.skipped.append(name)
                continue
            self.data[name] = (train, test, val)
            archs = self.args.archs or list(dataset_config(name, kind).archs)
            bad = [a for a in archs if model_kind(a) != kind]
            if bad:
                say(f"skip archs {', '.join(bad)} on {name}: they are not {kind} models")
                archs = [a for a in archs if a not in bad]
            protocol = self.protocol(kind, name)
            if protocol.kind != kind:
                if self.args.datasets is not None:
                    raise ValueError(f"protocol {protocol.name!r} trains on {protocol.kind}, and {name} holds {kind}")
                say(f"skip {name}: protocol {protocol.name!r} does not apply to {kind}")
                continue
            methods = self.methods_for(kind, protocol)
            cells = self.cells(name, kind, protocol, methods, self.args.ipc) + self.import_cells(name, kind, protocol)
            if self.args.scores and kind == "images":
                cells += self.score_cells(name, kind, protocol, methods)
            cells += self.native_cells(name, kind)
            for c in dict.fromkeys(cells):
                self.check_budget_mix(name, archs, c.protocol)
                plan.append((c, archs))
        return list(dict.fromkeys((c, tuple(a)) for c, a in plan))

    def import_cells(self, name: str, kind: str, protocol) -> list[Cell]:
        """The runs of each ``--import``: the release at its own IPC under the sweep's protocol; when it
        carries a learned learning rate, under the same protocol with ``lr="from-set"`` (its own group);
        and, unless ``--protocol`` fixes one, under the protocol of the labels it carries (``kd`` for
        static soft labels, ``fkd`` for replay labels made for it). Releases go with one image dataset:
        the one the sweep names."""
        if not self.args.imports or kind != "images":
            return []
        images = [d for d in (self.args.datasets or ()) if dataset_kind(d) == "images"]
        if len(images) != 1:
            raise ValueError(f"--import: name the one image dataset the releases are of (--datasets), got "
                             f"{images or 'none'}")
        out = []
        for spec in self.args.imports:
            method = register_release(spec)
            s = self.condenser(method, protocol, name).read(self.data[name][0], self.args.seeds[0])
            protocols = [protocol] + ([protocol.replace(lr="from-set")] if s.synthetic_lr is not None else [])
            label = {"static": "kd", "replay": "fkd"}.get(s.soft_label_policy)   # the label pipeline it carries
            if label and label != protocol.name and self.args.protocol is None:
                own = self.protocol(kind, name, label)
                if label == "fkd" and (s.replay_batch != own.batch_size or s.replay_epochs < own.passes):
                    say(f"note: {method} is not trained under fkd: its replay labels hold {s.replay_epochs} epochs "
                        f"of batches of {s.replay_batch}, fkd trains {own.passes} epochs of {own.batch_size}")
                else:
                    protocols.append(own)
            for p in protocols:
                out += self.cells(name, kind, p, [method], [s.ipc])
        return out

    def score_cells(self, name: str, kind: str, base, methods: list[str]) -> list[Cell]:
        """Cells the DD-Ranking scores of ``methods`` still need: the method under hard labels and
        the whole split at the same budget (HLR), the method and its random baseline under its own
        label pipeline (IOR), and both with the augmentation switched (ARS)."""

        ps = self.score_protocols(kind, name, base)
        out = []
        for m in methods:
            cls = condenser_class(m)
            if cls.role != "method":
                continue
            own, flip = (ps["soft"], ps["soft-aug"]) if cls.soft_labels else (ps["hard"], ps["hard-aug"])
            baseline = role_method("baseline", cls.traits()["labels"])
            out += self.cells(name, kind, ps["hard"], [m, role_method("reference")], self.args.ipc)
            for p in (own, flip):
                if p is not None:  # fkd has no augmentation-off twin (ARS is then "—")
                    out += self.cells(name, kind, p, [m, baseline], self.args.ipc)
        return out

    def check_budget_mix(self, dataset: str, archs, protocol) -> None:
        """One table, one budget: refuse to add records whose protocol differs from records already in
        the folder only by the budget rule (they would read as one table with two budgets)."""
        mine = protocol.to_dict()
        for rec in self.existing:
            p = rec.get("protocol") or {}
            if rec.get("dataset") != dataset or rec.get("arch") not in archs or not isinstance(p, dict):
                continue
            theirs = {**p, "budget": p.get("budget", "epochs")}
            theirs.pop("arch_kwargs", None)
            ours = {k: v for k, v in mine.items() if k != "arch_kwargs"}
            if theirs["budget"] != ours["budget"] and {k: v for k, v in theirs.items() if k != "budget"} == \
                    {k: v for k, v in ours.items() if k != "budget"}:
                raise ValueError(f"{self.results} holds {dataset} {protocol.name} records under budget="
                                 f"{theirs['budget']}, and this sweep asks budget={ours['budget']} for the same "
                                 "protocol: one table cannot mix budgets; use another --out")

    # -- one set, its runs

    def condenser(self, method: str, protocol, dataset: str):
        over = dict(self.overrides.get(method, {}))
        if self.args.preset == "quick":
            over = {**dataset_config(dataset, protocol.kind).condenser_overrides(method), **over}
        try:
            if getattr(self.args, "no_train", False) and "no_train" in condenser_class(method).Config.__dataclass_fields__:
                over["no_train"] = True
            return create_condenser(method, self.args.preset, **over).for_protocol(protocol)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None


def aug_variant(p):
    """The protocol with its augmentation switched (ARS): on when off (DSA for ``dc``, crop + flip
    otherwise), and off when on (mixup too, for ``kd``). ``fkd`` has none: its replay labels belong to
    the stored augmented views, so it cannot train without them (None)."""
    if p.augment == "fkd":
        return None
    if p.augment is None:
        return p.replace(augment="dsa" if p.name == "dc" else "rs2" if p.name == "rs2" else "crop-flip")
    return p.replace(augment=None, mixup_alpha=0.0)


def nothing_to_run(skipped: list[str]) -> str:
    """Why a sweep has no cell, with the closest valid spelling of each dataset it had to skip."""
    known = sorted({*IMAGE_DATASETS, *KNOWN_TU})
    hints = []
    for name in skipped:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) or \
            difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
        if name in known:
            hints.append(f"{name!r}: its files are missing from the data root (set CONDENSE_DATA)")
        elif close:
            match = next(k for k in known if k.lower() == close[0].lower())
            hints.append(f"{name!r}: did you mean {match!r}?")
    why = "nothing to run: no dataset, method and architecture apply" if not skipped else \
        f"nothing to run: dataset(s) {', '.join(map(repr, skipped))} skipped"
    return why + (f" ({'; '.join(hints)})" if hints else "")
