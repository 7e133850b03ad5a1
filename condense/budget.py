"""The student budget: how long a student trains, in optimizer steps (docs/design.md §3).

Every row of a table trains the same number of optimizer steps at the same batch sizes. Under the
``steps`` budget that number is what the protocol's passes give on the *plain* set of the table's
IPC: ``ipc × C`` items, i.e. ``passes × ceil(ipc·C / batch)`` steps, whose batch sizes within a pass
are those of the plain set (``[256, 244]`` for 500 items at batch 256). A set with more instances
(INFER's composed set) or fewer trains exactly those steps, drawing its batches from a stream of
successive shuffles of its own items; on the plain set itself the stream is the per-pass shuffle,
so a plain set trains exactly as under the old epoch rule. Learning-rate schedules count the plain
set's passes.

The ``epochs`` budget is the old rule, kept to reproduce a paper's own epoch-based protocol: every
set trains the protocol's passes over its own items (so a bigger set trains more steps). Tables
label it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

BUDGETS = ("steps", "epochs")
MAX_WHOLE_BATCH = 10_000


@dataclass(frozen=True)
class StepPlan:
    """One run's training length: ``passes`` reference passes of ``pass_batches`` batch sizes."""

    budget: str
    passes: int
    pass_batches: tuple[int, ...]
    reference_size: int            # items of one reference pass (ipc·C under ``steps``, the set under ``epochs``)
    set_size: int                  # items the set trains on (instances, or one schedule round)

    @property
    def steps_per_pass(self) -> int:
        return len(self.pass_batches)

    @property
    def total_steps(self) -> int:
        return self.passes * self.steps_per_pass

    @property
    def samples(self) -> int:
        """Samples seen: the sum of every step's batch size."""
        return self.passes * sum(self.pass_batches)

    def checkpoint_every(self, checkpoints: int) -> float:
        """Steps between test checkpoints: rows compare TTA only when this matches."""
        return self.total_steps / max(1, min(checkpoints, self.total_steps))

    def to_dict(self, checkpoints: int) -> dict:
        return {**asdict(self), "pass_batches": list(self.pass_batches), "steps": self.total_steps,
                "samples": self.samples, "checkpoint_every": self.checkpoint_every(checkpoints)}


def plan_steps(budget: str, passes: int, batch_size: int | None, set_size: int,
               reference_size: int | None, drop_last: bool = False) -> StepPlan:
    """The plan for a set of ``set_size`` items; ``reference_size`` is the plain set's ``ipc × C``
    (None: the set is its own reference, as for the whole split or under the ``epochs`` budget).
    ``batch_size=None`` trains one step per pass on the whole pass. ``drop_last``: a pass ends with its
    last full batch (a pass smaller than one batch still trains it once)."""
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; expected one of {', '.join(BUDGETS)}")
    if set_size < 1:
        raise ValueError("a set to train on needs at least one item")
    n = reference_size if budget == "steps" and reference_size else set_size
    if batch_size is None:
        if n > MAX_WHOLE_BATCH:
            raise ValueError(f"this protocol trains one step per pass on all {n} items; give it a batch size "
                             "(--batch-size) for a set this large")
        b = n
    else:
        b = min(batch_size, n)
    sizes = (b,) * (n // b) + ((n % b,) if n % b and not (drop_last and n >= b) else ())
    return StepPlan(budget=budget, passes=passes, pass_batches=sizes, reference_size=n, set_size=set_size)


class BatchStream:
    """Index batches of any requested size from successive seeded shuffles of ``n`` items.

    A batch that runs past the end of one shuffle continues into the next, so every item is seen
    once before any is seen twice. When batch sizes add up to ``n`` per pass, each pass is exactly
    one shuffle drawn when the pass starts: the epoch loop of the old rule."""

    def __init__(self, n: int, g: torch.Generator, device=None):
        self.n, self.g, self.device = n, g, device
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def take(self, k: int) -> torch.Tensor:
        parts, need = [], k
        while need:
            if self._pos == self._order.numel():
                self._order, self._pos = torch.randperm(self.n, generator=self.g), 0
            part = self._order[self._pos:self._pos + need]
            self._pos += part.numel()
            need -= part.numel()
            parts.append(part)
        idx = parts[0] if len(parts) == 1 else torch.cat(parts)
        return idx.to(self.device) if self.device is not None else idx


class WeightedStream:
    """Index batches drawn i.i.d. with probability proportional to ``weights`` (Mirage's
    frequency-proportional sampling of tree-sets), any batch size."""

    def __init__(self, weights: torch.Tensor, g: torch.Generator):
        if not bool((weights >= 0).all()) or float(weights.sum()) <= 0:
            raise ValueError("sampling weights must be >= 0 with a positive sum")
        self.weights, self.g = weights.float(), g

    def take(self, k: int) -> torch.Tensor:
        return torch.multinomial(self.weights, k, replacement=True, generator=self.g)


def schedule_batches(plan: StepPlan, stream_for_pass):
    """(pass index, index batch) for every step of ``plan``, lazily; ``stream_for_pass(epoch)`` gives
    the stream a pass draws from (one stream throughout, or a schedule's round)."""
    for epoch in range(plan.passes):
        stream = stream_for_pass(epoch)
        for b in plan.pass_batches:
            yield epoch, stream.take(b)
