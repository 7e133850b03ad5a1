"""The condenser interface and its registry (``create_condenser(name, **config)``)."""
from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

import torch

from ..identity import code_identity
from ..memory import PeakMemory
from ..format import SyntheticSet
from ._common import CondenseOutput

_CONDENSERS: dict[str, type["Condenser"]] = {}


def register_condenser(cls: type["Condenser"]) -> type["Condenser"]:
    if not getattr(cls, "name", None):
        raise ValueError(f"{cls.__name__} needs a name")
    if cls.role not in ROLES:
        raise ValueError(f"{cls.__name__}.role is {cls.role!r}; expected one of {', '.join(ROLES)}")
    if cls.name in _CONDENSERS:
        raise ValueError(f"condenser {cls.name!r} is already registered")
    _CONDENSERS[cls.name] = cls
    return cls


def registered(name: str) -> type["Condenser"] | None:
    """The condenser class registered as ``name``, or None."""
    return _CONDENSERS.get(name)


def list_condensers(kind: str | None = None) -> list[str]:
    return [n for n, c in _CONDENSERS.items() if kind is None or kind in c.kinds]


def default_condensers(kind: str, protocol) -> list[str]:
    """What a sweep runs by default: every condenser for the kind, and under a soft-label protocol
    only those that store soft labels (others would have nothing to train on); ``fkd`` also trains
    ``random`` (its hard labels under CutMix cross-entropy), the row every method must beat."""
    names = [n for n in list_condensers(kind) if _CONDENSERS[n].default_run]
    if getattr(protocol, "loss", "ce") == "kd":
        names = [n for n in list_condensers(kind) if _CONDENSERS[n].soft_labels]
        if getattr(protocol, "augment", None) == "fkd":
            names = ["random"] + names
    return names


def condenser_class(name: str) -> type["Condenser"]:
    if name not in _CONDENSERS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(_CONDENSERS)}")
    return _CONDENSERS[name]


ROLES = ("method", "baseline", "reference")


def role_method(role: str, labels: str = "hard") -> str:
    """The registered method of ``role`` (``baseline`` or ``reference``) for the ``labels`` pipeline."""
    for n, c in _CONDENSERS.items():
        if c.role == role and (role == "reference" or c.traits()["labels"] == labels):
            return n
    raise ValueError(f"no registered {labels}-label {role} method")


def condenser_module(name: str) -> str:
    """The module that defines method ``name``'s condenser (what its code identity hashes)."""
    return condenser_class(name).__module__


def create_condenser(name: str, preset: str = "paper", **overrides) -> "Condenser":
    """A condenser with its preset config (``paper`` or ``quick``), fields overridden by keyword."""
    cls = condenser_class(name)
    return cls(cls.Config.preset(preset) if hasattr(cls.Config, "preset") else cls.Config(), **overrides)


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """A method without hyperparameters."""

    @classmethod
    def preset(cls, name: str) -> "NoConfig":
        return cls()


class Condenser:
    """Turns a real training split into a :class:`SyntheticSet` under an IPC budget.

    Subclasses set ``name``, ``Config`` (a frozen dataclass), ``kinds`` (dataset kinds handled),
    and implement :meth:`_condense`, returning the set's parts as keyword arguments.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    kinds: ClassVar[tuple[str, ...]] = ("images",)
    touches_full_data: ClassVar[bool] = False
    uses_ipc: ClassVar[bool] = True          # False: the set ignores the budget (``full``)
    soft_labels: ClassVar[bool] = False      # stores soft labels (what the ``kd`` protocol trains on)
    default_run: ClassVar[bool] = True       # part of a sweep when --methods is not given
    deterministic: ClassVar[bool] = False    # the same set whatever the seed: condensed once, trained K times
    deviations: ClassVar[tuple[str, ...]] = ()
    # What the runner, the scores and the report read of a method (recorded in every record as its traits):
    role: ClassVar[str] = "method"           # "baseline": a trivial baseline (random, random-kd); "reference": full
    byte_matched: ClassVar[bool] = False     # set beside the random subset of the closest storage bytes (Mirage)
    distribution: ClassVar[str | None] = None  # a plugin's "name version" (condense.methods.plugins); None: built-in

    @classmethod
    def traits(cls) -> dict:
        """The method's traits as a record carries them (``role``, ``labels``, ``byte_matched``)."""
        return {"role": cls.role, "labels": "soft" if cls.soft_labels else "hard", "byte_matched": cls.byte_matched}

    def __init__(self, config=None, **overrides):
        config = config if config is not None else self.Config()
        try:
            self.config = dataclasses.replace(config, **overrides) if overrides else config
        except TypeError as e:
            fields = ", ".join(f.name for f in dataclasses.fields(config))
            raise ValueError(f"{self.name}: bad config override ({e}); fields are: {fields}") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    def for_protocol(self, protocol) -> "Condenser":
        """The condenser adapted to the evaluation protocol (RS2: one round per epoch)."""
        return self

    def condense(self, train, ipc: int, *, seed: int, device: str | torch.device = "cpu",
                 progress: bool = False) -> SyntheticSet:
        """Condense ``train`` to ``ipc`` items per class; timings and provenance are recorded."""
        kind = getattr(train, "kind", "images")
        if kind not in self.kinds:
            raise ValueError(f"method {self.name!r} does not apply to {kind} datasets "
                             f"({getattr(train, 'name', '?')}); it handles {', '.join(self.kinds)}")
        if not self.uses_ipc:
            ipc = 0  # recorded as 0: the whole split, whatever the budget
        elif not isinstance(ipc, int) or isinstance(ipc, bool) or ipc < 1:
            raise ValueError(f"ipc must be a positive integer, got {ipc!r}")
        else:
            largest = int(train.class_counts().max())
            if ipc > largest:
                raise ValueError(f"ipc {ipc} exceeds the largest class of {train.name}/{train.split} "
                                 f"({largest} items); the whole split is the `full` method")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
            raise ValueError(f"seed must be an integer in [0, 2^63), got {seed!r}")
        device = torch.device(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        with PeakMemory(device) as memory:   # teachers trained in the call are measured apart (condense.memory)
            out = self._condense(train, ipc, seed=seed, device=device, progress=progress)
        if isinstance(out, dict):  # parts alone: a method without extra facts, deviations or teachers
            out = CondenseOutput(parts=out)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        # Teachers count at their recorded cost (docs/design.md §4), cached or not: what this call spent on them
        # (already on its clocks) is replaced by their whole recorded cost, on each clock separately.
        cost = out.teacher
        seconds += cost.seconds - cost.fresh_seconds
        cpu_total = None if cost.cpu_seconds is None else cpu_seconds - cost.fresh_cpu_seconds + cost.cpu_seconds
        parts, extra = out.parts, out.extra
        deviations = tuple(self.deviations) + tuple(out.deviations)
        common = dict(
            method=self.name, ipc=ipc, num_classes=len(train.classes), class_names=train.classes,
            source_dataset=train.name, source_split=train.split, source_fingerprint=train.fingerprint,
            seed=seed, method_config=dataclasses.asdict(self.config), condense_seconds=seconds,
            teacher_seconds=float(cost.seconds), device=str(device), deviations=deviations,
            extra={"touches_full_data": self.touches_full_data, "condense_cpu_seconds": cpu_total,
                   "teacher_cpu_seconds": None if cost.cpu_seconds is None else float(cost.cpu_seconds),
                   "code": self.code_identity(parts=("version", "condenser", "git")),
                   "condense_memory": memory.record(), **extra},
        )
        if kind == "images":
            common.update(mean=tuple(train.mean), std=tuple(train.std))
        return SyntheticSet(**common, **parts)

    @classmethod
    def code_identity(cls, parts=("version", "condenser", "evaluator", "git")) -> dict:
        """:func:`condense.identity.code_identity` of this condenser's module; a plugin's adds its
        distribution's name and version."""
        code = code_identity(cls.__module__, parts=parts)
        return {**code, "plugin": cls.distribution} if cls.distribution else code

    def _condense(self, train, ipc: int, *, seed: int, device: torch.device, progress: bool) -> CondenseOutput:
        """The set's parts for ``ipc`` items per class (a :class:`CondenseOutput`)."""
        raise NotImplementedError


def per_class_indices(labels: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    return [torch.nonzero(labels == c, as_tuple=False).view(-1) for c in range(num_classes)]


def generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g
