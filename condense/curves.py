"""Test-accuracy curves that cost little and keep time-to-accuracy exact.

Time-to-accuracy is the training time at the first checkpoint whose accuracy on the **full** test set
reaches the target (DESIGN §4). Evaluating the full test set at all 50 checkpoints costs several
times the training it measures on a CPU. A screened curve gets the same answer for much less:

1. every checkpoint is first *screened* under bfloat16 autocast on a fixed, stratified order of the
   test images (the same for every run, drawn with a fixed generator; every prefix holds the classes
   in proportion), in growing chunks (``subset``, then doubling): screening stops as soon as the
   accuracy so far is below the lowest target still open by more than ``z`` standard errors (with the
   finite-population correction) plus the measured bfloat16 allowance; screening never reads more
   than half the test set (past that, the full pass that settles it is cheaper);
2. a checkpoint that screening cannot place below every open target is *confirmed* on the full test
   set in fp32; its full accuracy is what the curve records there, and decides the crossing;
3. the last checkpoint is always a full-test-set fp32 pass: it is the reported accuracy.

Only confirmed (full) points can be a crossing (:func:`counts_for_crossing`); a point recorded from
screening alone is one that screening placed clearly below every target still open (its accuracy is
the screened estimate, and ``screened`` says on how many images). Each curve point says where its
accuracy came from (``on``: ``full`` or ``subset``); the run records the method (``curve`` in a run's
``extra``). ``method="full"`` evaluates every checkpoint on the full test set (the exhaustive curve).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

CURVE_METHODS = ("screened", "full")


@dataclass(frozen=True)
class CurvePolicy:
    method: str = "screened"
    subset: int = 128             # first screened chunk (stratified), then doubling
    min_test: int = 300           # smaller test sets are evaluated in full at every checkpoint
    z: float = 3.0                # screening margin, in binomial standard errors of the subset accuracy
    allowance: float = 0.5        # extra margin (accuracy points) for bfloat16 screening
    screen_dtype: str = "bfloat16"

    def __post_init__(self):
        if self.method not in CURVE_METHODS:
            raise ValueError(f"unknown curve method {self.method!r}; expected one of {', '.join(CURVE_METHODS)}")
        if self.subset < 1 or self.min_test < 0 or not (self.z >= 0) or not (self.allowance >= 0):
            raise ValueError(f"curve policy needs subset >= 1, min_test >= 0, z >= 0 and allowance >= 0, got {self}")
        if self.screen_dtype not in ("bfloat16", "float32"):
            raise ValueError(f"screen_dtype must be bfloat16 or float32, got {self.screen_dtype!r}")


def stratified_order(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """All indices of ``y`` in a fixed order whose every prefix holds each class in proportion: each
    class is shuffled with a fixed generator and the classes are interleaved by rank / class size."""
    g = torch.Generator().manual_seed(seed)
    y = y.cpu()
    idx, key = [], []
    for c in torch.unique(y).tolist():
        members = (y == c).nonzero().view(-1)
        members = members[torch.randperm(members.numel(), generator=g)]
        idx.append(members)
        key.append((torch.arange(members.numel(), dtype=torch.float64) + 0.5) / members.numel())
    idx, key = torch.cat(idx), torch.cat(key)
    return idx[torch.argsort(key, stable=True)]


def stratified_subset(y: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """The first ``size`` indices of :func:`stratified_order` (sorted)."""
    return stratified_order(y, seed)[:size].sort().values


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024, dtype: str = "float32") -> float:
    """Top-1 accuracy (%) in eval mode; ``dtype="bfloat16"`` runs the forward passes under autocast."""
    was = model.training
    model.eval()
    correct = 0
    device_type = x.device.type if x.device.type in ("cpu", "cuda") else "cpu"
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        for i in range(0, x.shape[0], batch_size):
            correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train(was)
    return 100.0 * correct / max(1, x.shape[0])


class Curve:
    """The checkpoints of one run, screened and confirmed by a :class:`CurvePolicy`."""

    def __init__(self, test: tuple[torch.Tensor, torch.Tensor], targets, policy: CurvePolicy,
                 batch_size: int = 1024, like: "Curve | None" = None):
        """``like``: a curve of the same test set and policy whose screening order this one shares (runs
        trained together keep one ordered copy of the test set)."""
        self.x, self.y = test
        self.policy, self.batch_size = policy, batch_size
        self.open = sorted(float(t) for t in targets)
        self.n = int(self.x.shape[0])
        self.screening = (policy.method == "screened" and self.n >= max(policy.min_test, 2 * policy.subset)
                          and bool(self.open))
        if self.screening and like is not None and like.screening and like.x is self.x:
            self.sx, self.sy = like.sx, like.sy
        elif self.screening:
            order = stratified_order(self.y).to(self.x.device)
            self.sx, self.sy = self.x[order], self.y[order]
        self.points: list[dict] = []
        self.full_points = 0
        self.screened_images = 0

    def margin(self, acc: float, k: int) -> float:
        """How far below an open target a screened accuracy on ``k`` of the ``n`` images must be to
        place the checkpoint below it: ``z`` standard errors (binomial, at least that of 1 % error, with
        the finite-population correction) plus the bfloat16 allowance."""
        p = min(max(acc / 100.0, 0.01), 0.99)
        fpc = max(0.0, (self.n - k) / max(1, self.n - 1))
        allowance = self.policy.allowance if self.policy.screen_dtype == "bfloat16" else 0.0
        return 100.0 * self.policy.z * math.sqrt(p * (1 - p) / k * fpc) + allowance

    def full(self, model) -> float:
        self.full_points += 1
        return accuracy(model, self.x, self.y, self.batch_size)

    def screen(self, model) -> tuple[float, int, bool]:
        """(screened accuracy, images screened, placed below every open target)."""
        correct, k, chunk = 0, 0, self.policy.subset
        acc = 0.0
        while k == 0 or k + chunk <= self.n // 2:
            end = min(self.n, k + chunk)
            correct += accuracy(model, self.sx[k:end], self.sy[k:end], self.batch_size,
                                self.policy.screen_dtype) * (end - k) / 100.0
            k, chunk = end, chunk * 2
            acc = 100.0 * correct / k
            if acc < self.open[0] - self.margin(acc, k):
                return acc, k, True
            if acc >= self.open[0] + self.margin(acc, k):
                break  # clearly a crossing candidate: confirm it on the full set
        return acc, k, False

    def record(self, model, last: bool) -> dict:
        """Evaluate one checkpoint; returns ``{"acc", "on"}`` plus ``screen_acc`` and ``screened`` (images)
        when it was screened."""
        if not self.screening or (last and not self.open):
            return {"acc": self._full_and_close(model), "on": "full"}
        if not self.open:  # every target reached: the rest of the curve is screened for the plot only
            k = self.policy.subset
            acc = accuracy(model, self.sx[:k], self.sy[:k], self.batch_size, self.policy.screen_dtype)
            self.screened_images += k
            return {"acc": acc, "on": "subset", "screen_acc": acc, "screened": k}
        screen, k, below = self.screen(model)
        self.screened_images += k
        if last or not below:
            return {"acc": self._full_and_close(model), "on": "full", "screen_acc": screen, "screened": k}
        return {"acc": screen, "on": "subset", "screen_acc": screen, "screened": k}

    def _full_and_close(self, model) -> float:
        acc = self.full(model)
        self._close(acc)
        return acc

    def _close(self, acc: float) -> None:
        self.open = [t for t in self.open if acc < t]

    def describe(self) -> dict:
        d = {"method": self.policy.method if self.screening else "full", "full_points": self.full_points,
             "test_size": self.n}
        if self.screening:
            d.update({k: v for k, v in asdict(self.policy).items() if k != "method"},
                     screened_images=self.screened_images)
        return d


def counts_for_crossing(point: dict) -> bool:
    """A point can be a crossing only when its accuracy is on the full test set (older records,
    which have no ``on`` field, were evaluated on the full set at every checkpoint)."""
    return point.get("on", "full") == "full"
