"""What an evaluation returns: each seed's run (:class:`SeedRun`) and their summary (:class:`EvalResult`),
with time-to-accuracy per seed on both clocks (docs/design.md §4)."""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from .tta import condense_offset, time_to_accuracy


@dataclass
class SeedRun:
    seed: int
    final_acc: float
    curve: list[dict]
    train_seconds: float
    eval_seconds: float
    steps: int
    extra: dict = field(default_factory=dict)
    cpu_seconds: float = 0.0
    eval_cpu_seconds: float = 0.0


@dataclass
class EvalResult:
    arch: str
    protocol: dict
    runs: list[SeedRun]
    targets: tuple[float, ...]
    condense_seconds: float = 0.0
    teacher_seconds: float = 0.0
    storage_bytes: dict = field(default_factory=dict)
    device: str = "cpu"
    condense_cpu_seconds: float | None = None  # the condenser's process CPU time, when it recorded it
    teacher_cpu_seconds: float | None = None   # the teacher pool's CPU time, when every teacher recorded it
    plan: dict = field(default_factory=dict)   # the step budget every seed trained (condense.budget)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    @property
    def accs(self) -> list[float]:
        return [r.final_acc for r in self.runs]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accs)

    @property
    def std(self) -> float:
        """Population std over seeds (``np.std``, as DC and most papers report)."""
        return statistics.pstdev(self.accs) if len(self.accs) > 1 else 0.0

    def tta(self, target: float, include_condense: bool = True, clock: str = "train_seconds",
            include_teacher: bool = True) -> list[float | None]:
        """Seconds to ``target`` per seed (None: not reached). On ``clock="cpu_seconds"`` the condense
        part is CPU time too, and a set that did not record it gives None for every seed (unmeasured:
        no column mixes clocks). ``include_teacher=False`` leaves the teacher pool's cost out."""
        offset = 0.0
        if include_condense:
            cpu = clock == "cpu_seconds"
            offset = condense_offset(self.condense_cpu_seconds if cpu else self.condense_seconds,
                                     self.teacher_cpu_seconds if cpu else self.teacher_seconds, include_teacher)
            if offset is None:
                return [None for _ in self.runs]
        return [time_to_accuracy(r.curve, target, offset, clock) for r in self.runs]

    def tta_summary(self) -> dict[str, dict]:
        """Per target: seconds per seed, how many reached it, the mean when all did, and the same
        without teacher time and on the CPU clock."""
        out = {}
        for t in self.targets:
            per = self.tta(t)
            reached = [v for v in per if v is not None]
            out[f"{t:g}"] = {"per_seed": per, "reached": len(reached), "n": len(per),
                             "mean": statistics.fmean(reached) if reached and len(reached) == len(per) else None,
                             "train_only": self.tta(t, include_condense=False),
                             "no_teacher": self.tta(t, include_teacher=False),
                             "cpu": self.tta(t, clock="cpu_seconds"),
                             "cpu_no_teacher": self.tta(t, clock="cpu_seconds", include_teacher=False)}
        return out

    def summary(self) -> dict:
        return {"arch": self.arch, "protocol": self.protocol["name"], "preset": self.protocol["preset"],
                "seeds": self.seeds, "accs": self.accs, "mean": self.mean, "std": self.std,
                "n": len(self.runs), "tta": self.tta_summary(),
                "train_seconds": statistics.fmean(r.train_seconds for r in self.runs),
                "condense_seconds": self.condense_seconds, "teacher_seconds": self.teacher_seconds,
                "storage_bytes": self.storage_bytes}

    def to_dict(self) -> dict:
        return {**self.summary(), "protocol": self.protocol, "targets": list(self.targets),
                "device": self.device, "runs": [asdict(r) for r in self.runs]}

    def __str__(self) -> str:
        return f"{self.arch}/{self.protocol['name']}: {self.mean:.2f} ± {self.std:.2f} % over seeds {self.seeds}"
