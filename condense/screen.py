"""The screen's decisions (docs/protocols.md, "Screened curves"): the fixed stratified order of the
test images, the planned read sizes, the two estimates of a checkpoint's full-set accuracy, and the
tests that may place it below a target, each look at its share of the level (Bonferroni over looks
and tests: a checkpoint at its target is placed below it with probability at most ``level``)."""
from __future__ import annotations

import math
from statistics import NormalDist

import torch

from .tails import binomial_cdf, hypergeometric_cdf

VARIANCE_FLOOR = 0.01 * 0.99  # no estimate is trusted below the variance of 1 % error


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


class ScreenTests:
    """The screening half of :class:`condense.curves.Curve`: estimates and tests over its anchors."""

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
