"""Test-accuracy curves that cost little and keep time-to-accuracy the exhaustive curve's (at 99.9 % per target).

Time-to-accuracy is the training time at the first checkpoint whose accuracy on the **full** test set
reaches the target (docs/design.md §4). A screened curve (``method="screened"``) first screens each
checkpoint on a prefix of a fixed stratified order of the test images and places it below the open
targets only at the policy's ``level`` over the whole screen (:mod:`condense.screen`); a checkpoint it
cannot place is confirmed on the full test set in fp32 and becomes the anchor of later screens; the
last checkpoint is always a full pass. On a CPU the curve is deferred: weight snapshots are held and
evaluated after training, the last checkpoint first, so that it anchors every screen. Only full points
can be a crossing (:func:`condense.tta.counts_for_crossing`). ``method="full"`` evaluates every
checkpoint on the full test set (the exhaustive curve).

``docs/protocols.md`` ("Screened curves") gives the rule, its guarantee and the measurements behind
it; :mod:`condense.evalpass` how a pass is batched and laid out on each device.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from .engine import Clock
from .evalpass import CHANNELS_LAST_PIXELS, correct, cpu_batch, faster_layout
from .screen import ScreenTests, planned_reads, stratified_order, stratified_subset  # noqa: F401  (re-exported)
from .tails import binomial_cdf, hypergeometric_cdf, normal_quantile  # noqa: F401  (re-exported)

CURVE_METHODS = ("screened", "full")


DEFER_BYTES = 512 * 2**20       # the most a deferred curve holds in weight snapshots (then it evaluates)


@dataclass(frozen=True)
class CurvePolicy:
    method: str = "screened"
    subset: int = 128             # first screened prefix (stratified) of the first checkpoint
    min_read: int = 64            # the standard-error rule tests from this many images on (exact tests on any)
    small_read: int = 64          # the smallest planned read; the planned reads double from it (Curve.reads)
    min_test: int = 300           # smaller test sets are evaluated in full at every checkpoint
    level: float = 0.001          # the most often a checkpoint at its target is placed below it, over a screen
    allowance: float = 0.5        # extra margin (accuracy points) for bfloat16 screening
    screen_dtype: str | None = None  # None: float32 on a CPU, bfloat16 elsewhere
    paired: bool = True           # also estimate from the latest full pass (a difference estimator)
    batch: int | None = None      # images per forward pass; None: 16 at 32×32 on a CPU (cpu_batch),
                                  # the protocol's eval_batch_size elsewhere
    channels_last: bool | None = None  # evaluate a channels-last copy; None: on a CPU from 28×28 on,
                                       # where it is faster (faster_layout), else never
    reuse: bool = True            # a confirming fp32 pass keeps the fp32-screened prefix, reads the rest
    defer: bool | None = None     # hold weight snapshots and evaluate after training, the last checkpoint
                                  # first; None: on a CPU, while the snapshots fit in DEFER_BYTES

    def __post_init__(self):
        if self.method not in CURVE_METHODS:
            raise ValueError(f"unknown curve method {self.method!r}; expected one of {', '.join(CURVE_METHODS)}")
        if (self.subset < 1 or self.min_read < 1 or self.small_read < 1 or self.min_test < 0 or not (0 < self.level < 0.5)
                or not (self.allowance >= 0) or (self.batch is not None and self.batch < 1)):
            raise ValueError(f"curve policy needs subset >= 1, min_read >= 1, small_read >= 1, min_test >= 0, 0 < level < 0.5, "
                             f"allowance >= 0 and batch >= 1, got {self}")
        if self.screen_dtype not in (None, "bfloat16", "float32"):
            raise ValueError(f"screen_dtype must be bfloat16 or float32, got {self.screen_dtype!r}")


def _snapshot(model):
    """A copy of a module's weights (state dict) on its device; anything else (a replayed
    checkpoint's index) as it is."""
    if not isinstance(model, torch.nn.Module):
        return model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _nbytes(weights) -> int:
    return sum(v.numel() * v.element_size() for v in weights.values()) if isinstance(weights, dict) else 0


class Curve(ScreenTests):
    """The checkpoints of one run, screened and confirmed by a :class:`CurvePolicy`."""

    def __init__(self, test: tuple[torch.Tensor, torch.Tensor], targets, policy: CurvePolicy,
                 batch_size: int = 1024, like: "Curve | None" = None, live: bool = False,
                 progress: bool = False):
        """``like``: a curve of the same test set and policy whose screening order this one shares (runs
        trained together keep one ordered copy of the test set). ``batch_size``: the protocol's
        evaluation batch, used off the CPU unless the policy sets ``batch``. ``live``: every
        checkpoint is evaluated when it is reached (a run that stops at a target), never deferred.
        ``progress``: a bar over the held checkpoints while a deferred curve evaluates them."""
        self.x, self.y = test
        self.policy = policy
        cpu = self.x.device.type == "cpu"
        pixels = self.x.shape[-2] * self.x.shape[-1] if self.x.dim() == 4 else None
        self.batch_size = policy.batch or (cpu_batch(pixels) if cpu else batch_size)
        self.screen_dtype = policy.screen_dtype or ("float32" if cpu else "bfloat16")
        large = pixels is not None and pixels >= CHANNELS_LAST_PIXELS
        # None until the first checkpoint measures the faster layout (on a CPU from 28×28 on)
        self.channels_last = (None if cpu and large else False) if policy.channels_last is None else policy.channels_last
        self.layout_probe: dict | None = None
        self.open = sorted(float(t) for t in targets)
        self.n = int(self.x.shape[0])
        self._reads = planned_reads(self.n, policy.small_read)
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
        self.reused_images = 0   # screened images a confirming pass did not read again
        self.wrong_images = 0    # screened images read among an anchor's wrong ones (part of screened_images)
        self.anchor: tuple[float, torch.Tensor] | None = None  # (accuracy, correctness in screening order)
        self.last_anchor: tuple[float, torch.Tensor] | None = None  # the last checkpoint's, when deferred
        self.anchor_at = self.last_at = 0  # the checkpoints (indices) of the two anchors
        self.defer = bool(self.screening and not live and (cpu if policy.defer is None else policy.defer))
        self.held: list[tuple[object, dict]] = []  # (weights, point) of checkpoints awaiting the last one
        self.held_bytes = 0
        self._eval_model = None  # the copy a deferred curve loads each checkpoint's weights into
        self.progress = progress
        self.first_read = policy.subset  # what the next checkpoint reads first
        self._wrong = None  # (an anchor's correctness, the positions it got wrong in a fixed random order)
        self.final = Clock(self.x.device)  # the last checkpoint's full pass (the reported accuracy)

    # -- the two evaluations (a recorded run replays them)

    def prepared(self, model):
        """The model to evaluate: a channels-last copy where the policy asks or where it is the faster
        layout on this host (:func:`faster_layout`, decided at the first checkpoint), else the model."""
        if not isinstance(model, torch.nn.Module):
            return model
        if self.channels_last is None:
            self.layout_probe = faster_layout(model, self.x, self.y, self.batch_size)
            self.channels_last = self.layout_probe["channels_last"]
        if not self.channels_last:
            return model
        if model is self._eval_model:  # a deferred curve's own copy: converted once, in place
            return model.to(memory_format=torch.channels_last)
        return copy.deepcopy(model).to(memory_format=torch.channels_last)

    def screen_correct(self, model, lo: int, hi: int) -> torch.Tensor:
        """Correctness of images ``lo:hi`` of the screening order, in the screening dtype."""
        return correct(model, self.sx[lo:hi], self.sy[lo:hi], self.batch_size, self.screen_dtype)

    def correct_at(self, model, positions: torch.Tensor) -> torch.Tensor:
        """Correctness of the images at ``positions`` of the screening order, in the screening dtype."""
        return correct(model, self.sx[positions], self.sy[positions], self.batch_size, self.screen_dtype)

    def full_correct(self, model) -> torch.Tensor:
        """Correctness of every test image in fp32 (in the screening order when screening)."""
        if self.screening:
            return correct(model, self.sx, self.sy, self.batch_size)
        return correct(model, self.x, self.y, self.batch_size)

    def rest_correct(self, model, lo: int) -> torch.Tensor:
        """Correctness in fp32 of images ``lo:`` of the screening order (what a confirming pass still
        reads after an fp32 screen of ``lo`` images)."""
        return correct(model, self.sx[lo:], self.sy[lo:], self.batch_size)

    # -- screening (the tests: condense.screen.ScreenTests)

    def screen(self, model) -> tuple[float, torch.Tensor, bool, int]:
        """(screened estimate, correctness of the screened prefix, placed below every open target,
        images read beyond the prefix).

        The screen reads only planned sizes (:meth:`reads`) and spends its level evenly over them: a
        checkpoint that reached the target is placed below it with probability at most ``level`` over
        the whole screen, whichever reads it takes (Bonferroni over the planned looks, and within a
        look over its tests, :meth:`placed_below`). The first read is ``small_read`` after a placed
        checkpoint and ``subset`` otherwise (at the first checkpoint, after a full pass); each further
        read is the planned size of what the current estimate says is needed (×1.2), at least the next
        planned size and at most 4× what was read; a read holding an estimate at or above the target
        goes on until ``subset`` images before the full pass settles it (a small prefix is noisy). Where the anchor
        below the target got at most half the test set wrong, each read is matched by as many of those
        images (:meth:`_wrong_images`): the only ones where the checkpoint can gain on it."""
        target, half = self.open[0], self.n // 2
        small = self.policy.small_read
        allowance = self.policy.allowance if self.screen_dtype == "bfloat16" else 0.0
        wrong = self._wrong_images(target - allowance)
        parts, k, hi, gained, m = [], 0, self._read_at_least(min(self.first_read, half)), 0, 0
        while True:
            parts.append(self.screen_correct(model, k, hi))
            k = hi
            prefix = torch.cat(parts)
            if wrong is not None and m < min(k, wrong[0].numel()):
                upto = min(k, wrong[0].numel())
                gained += int(self.correct_at(model, wrong[0][m:upto]).sum())
                m = upto
            est, se = self.estimate(prefix, target - allowance)
            look = self.look_level(k)
            z = normal_quantile(look / max(1, len(self.tests_at(k, target - allowance, wrong is not None))))
            gap = target - est - allowance  # what z standard errors must fit under
            need = k * (z * se / gap) ** 2 if gap > 0 else math.inf  # se shrinks as 1/sqrt(k)
            if self.placed_below(prefix, target - allowance, (gained, m, wrong[0].numel(), wrong[1]) if m else None,
                                 look):
                self.first_read = small
                return est, prefix, True, m
            self.first_read = self.policy.subset
            if est >= target + z * se + allowance or (gap <= 0 and k >= self.policy.subset) or k >= half:
                return est, prefix, False, m  # a crossing candidate, or too close to tell: the full pass settles it
            hi = self._read_at_least(min(4 * k, max(k + 1, 1.2 * need)))

    def add(self, model, point: dict, last: bool) -> dict | None:
        """A checkpoint of the run (``point``: its step and clocks). A live curve evaluates it now
        (:meth:`record`), appends the point and returns it. A deferred one keeps a copy of the weights
        and returns None until the last checkpoint, which evaluates them all (:meth:`resolve`) and
        returns the last point. A deferred curve whose copies would pass ``DEFER_BYTES`` evaluates
        what it holds and goes on live."""
        if self.defer:
            snap = _snapshot(model)
            size = _nbytes(snap)
            self.held.append((snap, point))
            self.held_bytes += size
            if last:
                return self.resolve(model)
            if self.held_bytes + size <= DEFER_BYTES:  # room for the next one
                return None
            self.defer = False
            self._place_held(self.held, model)
            self.held, self._eval_model = [], None
            return self.points[-1]
        point.update(self.record(model, last))
        self.points.append(point)
        return point

    def resolve(self, model) -> dict:
        """Evaluate the held checkpoints (§ module docstring, with the last checkpoint first): its full
        fp32 pass is the reported accuracy and a second anchor for every screen, so that checkpoints
        near it, and far before a crossing, are placed with fewer images. Its accuracy closes no
        target before the earlier checkpoints are placed. Returns the last point."""
        last_weights, last_point = self.held[-1]
        last_model = self.prepared(self._load(last_weights, model))
        still_open = list(self.open)
        with self.final:
            acc = self._full(last_model)
        self.last_anchor, self.anchor, self.open = self.anchor, None, still_open
        self.last_at = len(self.points) + len(self.held) - 1
        self._place_held(self.held[:-1], model)
        last_point.update({"acc": acc, "on": "full"})
        self.points.append(last_point)
        self.open = [t for t in self.open if acc < t]
        self.held = []
        return last_point

    def _place_held(self, held, model) -> None:
        """Evaluate held checkpoints in order (not the last one) and append their points."""
        for weights, point in tqdm(held, desc="test curve", unit="checkpoint", leave=False, disable=not self.progress):
            point.update(self.record(self._load(weights, model), last=False))
            self.points.append(point)

    def _load(self, weights, model):
        """The model with a held checkpoint's weights: one copy of ``model`` loaded in turn."""
        if not isinstance(weights, dict):
            return weights
        if self._eval_model is None:
            self._eval_model = copy.deepcopy(model)
        self._eval_model.load_state_dict(weights)
        return self._eval_model

    def record(self, model, last: bool) -> dict:
        """Evaluate one checkpoint; returns ``{"acc", "on"}`` plus ``screen_acc`` and ``screened`` (images)
        when it was screened. The last checkpoint's evaluation, screening included, is timed as the
        final pass (it reads the test set once)."""
        with self.final if last else contextlib.nullcontext():
            return self._record(self.prepared(model), last)

    def _record(self, model, last: bool) -> dict:
        if not self.screening or (last and not self.open):
            return {"acc": self._full(model), "on": "full"}
        if not self.open:  # every target reached: the rest of the curve is screened for the plot only
            k = self.policy.subset
            acc = self.estimate(self.screen_correct(model, 0, k))[0]
            self.screened_images += k
            return {"acc": acc, "on": "subset", "screen_acc": acc, "screened": k}
        screen, prefix, below, extra = self.screen(model)
        k = int(prefix.numel())
        self.screened_images += k + extra
        self.wrong_images += extra
        if last or not below:
            keep = prefix if self.policy.reuse and self.screen_dtype == "float32" else None
            point = {"acc": self._full(model, keep), "on": "full", "screen_acc": screen, "screened": k}
        else:
            point = {"acc": screen, "on": "subset", "screen_acc": screen, "screened": k}
        return {**point, "wrong_read": extra} if extra else point

    def _full(self, model, prefix: torch.Tensor | None = None) -> float:
        """A full fp32 pass: the point's accuracy, the next anchor, and the targets it reaches close.
        ``prefix``: the fp32 correctness of the first images of the screening order, already read."""
        self.full_points += 1
        if prefix is not None and prefix.numel():
            self.reused_images += int(prefix.numel())
            c = torch.cat([prefix, self.rest_correct(model, int(prefix.numel()))])
        else:
            c = self.full_correct(model)
        acc = 100.0 * int(c.sum()) / max(1, self.n)
        if self.screening:
            self.anchor, self.anchor_at = (acc, c), len(self.points)
        self.open = [t for t in self.open if acc < t]
        return acc

    def describe(self) -> dict:
        d = {"method": self.policy.method if self.screening else "full", "full_points": self.full_points,
             "test_size": self.n, "batch": self.batch_size, "final_pass_seconds": self.final.total}
        if self.screening:
            d.update({k: v for k, v in asdict(self.policy).items() if k not in ("method", "batch")},
                     screen_dtype=self.screen_dtype, planned_reads=self._reads, channels_last=self.channels_last,
                     layout_probe=self.layout_probe,
                     screened_images=self.screened_images, reused_images=self.reused_images,
                     wrong_images=self.wrong_images,
                     deferred=self.defer, held_bytes=self.held_bytes)
        return d
