"""Test-accuracy curves that cost little and keep time-to-accuracy the exhaustive curve's (at 99.9 % per target).

Time-to-accuracy is the training time at the first checkpoint whose accuracy on the **full** test set
reaches the target (DESIGN §4). Evaluating the full test set at all 50 checkpoints costs several
times the training it measures on a CPU. A screened curve gets the same answer for much less:

1. every checkpoint is first *screened* (in fp32 on a CPU, under bfloat16 autocast on a GPU) on a
   fixed, stratified order of the test images (the same for every run, drawn with a fixed generator; every prefix holds the classes
   in proportion). Screening reads a prefix of that order and estimates the full-set accuracy two
   ways: the prefix's own accuracy, and (``paired``) the accuracy of the latest full pass (the
   *anchor*) plus the mean change of per-image correctness from the anchor on the prefix (a
   difference estimator: consecutive checkpoints agree on most images, so its variance is far
   smaller late in training). The estimate with the smaller standard error (binomial, with the
   finite-population correction) is what a screened point reports.

   A checkpoint is placed below the lowest target still open (less an ``allowance`` when screening in
   bfloat16, which changed at most 0.14 % of predictions and 0.07 accuracy points on the recorded
   MNIST run) only at the policy's ``level`` (0.1 %) **over the whole screen**: a screen reads only
   planned sizes (:meth:`Curve.reads`: 64 images doubled up to half the test set; 8 looks on 10,000
   images) and each look spends ``level / looks``, split evenly (Bonferroni) over the tests it makes
   on the anchor nearer the checkpoint (fixed by position before the look reads):

   - without an anchor, a binomial test on the prefix's correct images;
   - the *standard-error rule*, from ``min_read`` images on: the difference estimate from the anchor
     is below the target by more than the normal quantile of the test's level, in standard errors,
     its variance floored at its value at the target (``δ(1 - δ)``, ``δ`` the target's distance from
     the anchor) and at that of 1 % error. Without the floor, a prefix that happens to hold few of a
     checkpoint's gains estimates a low variance just when its estimate is low;
   - when the anchor is below the target, a binomial test on the prefix's *gains* (images the
     checkpoint gets right and the anchor wrong: its accuracy is at most the anchor's plus their
     share), and, where the anchor got at most half the test set wrong, a hypergeometric test on those
     wrong images, read in a fixed random order alongside the prefix: the only images on which the
     checkpoint can gain.

   By the union bound a checkpoint that reached its target is placed below it with probability at
   most ``level``, whichever reads a screen takes; only the crossing checkpoint can move a target's
   time-to-accuracy, so a run's reported TTA differs from the exhaustive curve's with probability at
   most 0.1 % per target (fp32 screening; in bfloat16 add the allowance's margin). A screen that
   tested every look at the full level (before) placed a checkpoint at its target below it in
   0.37-0.76 % of random test orders; this one in 0.005-0.04 % (``benchmarks.screen_level``).

   The first checkpoint reads ``subset`` images first, a checkpoint after a placed one the smallest
   planned read; each further read is the planned size of 1.2× what the estimate says is needed, at
   least the next one and at most 4× what was read, never more than half the test set (past that,
   the full pass settles it: without ``reuse`` that pass is cheaper, and with it reading on measured
   no cheaper on the recorded run);
2. a checkpoint that screening cannot place below every open target is *confirmed* on the full test
   set in fp32; its full accuracy is what the curve records there, and decides the crossing; its
   per-image correctness becomes the anchor. Where screening ran in fp32 (a CPU), the confirming pass
   keeps the prefix it screened and reads only the rest of the test set (``reuse``): the same
   forward passes of the same model copy, so the same predictions, and one full pass of reading;
3. the last checkpoint is always a full-test-set fp32 pass: it is the reported accuracy.

On a CPU the curve is *deferred* (``defer``; the issue's "keep weight snapshots"): each checkpoint's
weights are copied when it is reached, and after training the last checkpoint is evaluated first. Its
full pass is then a second anchor for every screen (its tests use the anchor nearer the checkpoint,
its reported estimate the one with the smaller standard error), and its accuracy closes no target before the checkpoints
before it are placed; those follow in order, as above. Most checkpoints of a run lie on its plateau,
near the last one, so they are placed with far fewer images: on the recorded MNIST run one checkpoint
at 89.29 % is placed below 90 % without a full pass, and the curve reads 20 % fewer images (42,032
against 52,480) for the same crossings. A curve holds at most ``DEFER_BYTES`` of copies (a ConvNet-3
takes 1.2-1.3 MB a checkpoint); past that it evaluates what it holds and goes on live, as do runs that
stop at a target (``live``) and curves on a GPU unless the policy asks.

Only confirmed (full) points can be a crossing (:func:`counts_for_crossing`); a point recorded from
screening alone is one that screening placed clearly below every target still open (its accuracy is
the screened estimate, ``screened`` says on how many images of the prefix, and ``wrong_read`` how many
of an anchor's wrong images were read beside them). Each curve point says where its
accuracy came from (``on``: ``full`` or ``subset``); the run records the method (``curve`` in a run's
``extra``). ``method="full"`` evaluates every checkpoint on the full test set (the exhaustive curve).

Evaluation runs in batches of ``batch`` images: on a CPU 16 images of 32×32 (more for smaller
images, :func:`cpu_batch`: small batches stay in cache, 1.5x faster than batches of 1,024 on two
cores; on 8×8 digits batches of 256 were fastest); on a GPU the protocol's ``eval_batch_size``. From
28×28 on, a CPU evaluates in whichever memory layout is faster on that host (:func:`faster_layout`,
measured once per process and model shape): a channels-last copy of the model was 1.2-1.4x faster
in fp32 on a CPU with AMX units, and 1.4-2x slower on one without (its GroupNorm kernel). Students
in eval mode classify each image on its own, so neither the batch nor the layout changes a
prediction beyond kernel rounding (none changed in the measurement), and full passes of the
screened and the exhaustive curve run the same way.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import torch

from .engine import Clock
from .evalpass import CHANNELS_LAST_PIXELS, CPU_BATCH, correct, cpu_batch, faster_layout  # noqa: F401
from .tails import binomial_cdf, hypergeometric_cdf, normal_quantile  # noqa: F401

CURVE_METHODS = ("screened", "full")


VARIANCE_FLOOR = 0.01 * 0.99  # no estimate is trusted below the variance of 1 % error
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


def planned_reads(n: int, small_read: int) -> list[int]:
    """``small_read`` doubled while under half of ``n`` test images, then half of them."""
    out, k = [], max(1, small_read)
    while k < n // 2:
        out.append(k)
        k *= 2
    return out + [n // 2]


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


class Curve:
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

    # -- screening

    def _se(self, variance: float, k: int) -> float:
        fpc = max(0.0, (self.n - k) / max(1, self.n - 1))
        return 100.0 * math.sqrt(max(variance, VARIANCE_FLOOR) / k * fpc)

    def _anchors(self) -> list[tuple[float, torch.Tensor]]:
        """The anchors a screen of this checkpoint can pair with (none unless ``paired``), the one nearer
        to it first (on a tie, the latest full pass)."""
        at = len(self.points)
        anchors = [self.anchor, self.last_anchor] if self.policy.paired else []
        if self.last_at - at < at - self.anchor_at:
            anchors = anchors[::-1]
        return [a for a in anchors if a is not None]

    def estimate(self, c: torch.Tensor, target: float | None = None) -> tuple[float, float]:
        """(estimated full-set accuracy, its standard error) from the correctness ``c`` of a prefix of
        the screening order: the prefix's accuracy, or an anchor's accuracy plus the mean change
        from that anchor on the prefix (the latest full pass, or a deferred curve's last checkpoint),
        whichever has the smallest standard error. It is what a screened point reports and what plans
        the next read; placing a checkpoint is :meth:`placed_below`'s, on one anchor fixed in advance.

        With ``target`` each variance is floored at its value at that target (:meth:`_paired`)."""
        k = int(c.numel())
        p = float(c.float().mean())
        t = None if target is None else min(1.0, max(0.0, target / 100.0))
        best = (100.0 * p, self._se(max(p * (1 - p), 0.0 if t is None else t * (1 - t)), k))
        for anchor in self._anchors():
            paired = self._paired(c, anchor, target)
            if paired[1] < best[1]:
                best = paired
        return best

    def _paired(self, c: torch.Tensor, anchor: tuple[float, torch.Tensor], target: float | None) -> tuple[float, float]:
        """The difference estimate from ``anchor`` (its accuracy plus the mean per-image change on the
        prefix) and its standard error. With ``target`` (a test of "below ``target``") the variance is
        at least ``|δ|(1 - |δ|)``, ``δ = target - anchor``: the least variance of a per-image change
        whose mean is ``δ`` (a score test's variance). A prefix that happens to hold few changes
        estimates a small variance just when its estimate is low; without this floor a checkpoint at
        its target was placed below it in 1.2-1.7 % of draws instead of 0.135 %."""
        k = int(c.numel())
        acc0, c0 = anchor
        d = c.float() - c0[:k].float()
        md = float(d.mean())
        delta = 0.0 if target is None else min(1.0, abs(target / 100.0 - acc0 / 100.0))
        return acc0 + 100.0 * md, self._se(max(float((d * d).mean()) - md * md, delta * (1 - delta)), k)

    def reads(self) -> list[int]:
        """The planned reads of a screen (images of the screening order): ``small_read`` doubled until
        half the test set, then half the test set. A screen tests only at these sizes, so that its
        level can be spent over every look it may take (:meth:`placed_below`)."""
        return self._reads

    def look_level(self, k: int) -> float:
        """The share of the screen's level a look at ``k`` images spends (the shares of all planned reads
        sum to ``level``)."""
        return self.policy.level / len(self._reads)

    def _read_at_least(self, k: float) -> int:
        """The smallest planned read of at least ``k`` images (half the test set at most)."""
        return next((r for r in self._reads if r >= k), self.n // 2)

    def tests_at(self, k: int, target: float, wrong: bool) -> list[str]:
        """The tests a look at ``k`` images makes against ``target`` (:meth:`placed_below`), decided
        before it reads: without an anchor ``prefix`` (binomial on the prefix); with one, ``gains``
        when the anchor is below the target and ``se`` (the standard-error rule) from ``min_read``
        images on; ``wrong`` (hypergeometric on the anchor's wrong images) where it applies."""
        anchors = self._anchors()[:1]
        names = ["gains"] if anchors and anchors[0][0] < target else [] if anchors else ["prefix"]
        return names + ["wrong"] * bool(wrong) + ["se"] * bool(anchors and k >= self.policy.min_read)

    def placed_below(self, c: torch.Tensor, target: float, wrong: tuple[int, int, int, int] | None = None,
                     level: float | None = None) -> bool:
        """Whether one look at the prefix correctness ``c`` rejects "the full-set accuracy is at least
        ``target``" at ``level`` (a look's share of the screen's level, split evenly, Bonferroni, over
        the tests it makes). The tests, on the anchor nearer the checkpoint (chosen by position, never
        by what the prefix shows):

        - without an anchor, binomial on the prefix's correct images against ``target``;
        - binomial on the *gains* (images the checkpoint gets right and the anchor, below ``target``,
          gets wrong): the full-set accuracy is at most the anchor's plus their share, so reaching
          ``target`` needs a share of gains of at least the gap;
        - hypergeometric, ``wrong = (gains, read, N, K)``: gains among the first ``read`` of the ``N``
          images the anchor got wrong, in a fixed random order, when reaching ``target`` needs at least
          ``K`` of them (:meth:`_wrong_images`);
        - the standard-error rule, from ``min_read`` images on: the anchor's difference estimate
          (:meth:`_paired`, its variance floored at the target's) is below ``target`` by more than the
          normal quantile of the test's level, in standard errors.

        The binomial and hypergeometric tests are exact (no normal approximation, no estimated
        variance), so they hold on the smallest reads. ``level`` None: the look's share at ``k``
        (:meth:`look_level`)."""
        k = int(c.numel())
        anchor = next(iter(self._anchors()), None)
        names = self.tests_at(k, target, wrong is not None)
        if not names:  # an anchor above the target and a read under min_read: nothing to test yet
            return False
        alpha = (self.look_level(k) if level is None else level) / len(names)

        def p_value(name: str) -> float:
            if name == "prefix":
                return binomial_cdf(int(c.sum()), k, target / 100.0)
            if name == "gains":
                return binomial_cdf(int((c & ~anchor[1][:k]).sum()), k, (target - anchor[0]) / 100.0)
            if name == "wrong":
                return hypergeometric_cdf(*wrong)
            est, se = self._paired(c, anchor, target)
            return NormalDist().cdf((est - target) / se)

        return any(p_value(name) <= alpha for name in names)

    def _wrong_images(self, target: float) -> tuple[torch.Tensor, int] | None:
        """The images (positions in the screening order) that an anchor below ``target`` got wrong, in
        a fixed random order, and how many of them a checkpoint must get right to reach ``target``
        (its accuracy is at most the anchor's plus those gains). None unless the anchor nearer the
        checkpoint is below ``target`` and got at most half the test set wrong (reading its wrong
        images then gains little over the prefix)."""
        anchor = next(iter(self._anchors()), None)
        if anchor is None or not (50.0 <= anchor[0] < target):
            return None
        if self._wrong is None or self._wrong[0] is not anchor[1]:
            where = (~anchor[1]).nonzero().squeeze(1)
            order = torch.randperm(where.numel(), generator=torch.Generator().manual_seed(0))
            self._wrong = (anchor[1], where[order.to(where.device)])
        need = math.ceil(self.n * (target - anchor[0]) / 100.0 - 1e-9)
        return self._wrong[1], need

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
        from tqdm.auto import tqdm

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
