"""One-sided tail probabilities for the screen's tests (:mod:`condense.curves`): binomial,
hypergeometric and normal."""
from __future__ import annotations

import math
from statistics import NormalDist


def binomial_cdf(x: int, k: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(k, p), through the regularised incomplete beta function (exact to
    rounding in either tail)."""
    if p <= 0.0 or x >= k:
        return 1.0
    if p >= 1.0 or x < 0:
        return 0.0
    from scipy.special import bdtr

    return float(bdtr(x, k, p))


def hypergeometric_cdf(x: int, m: int, N: int, K: int) -> float:
    """P(X <= x) for X the successes among ``m`` draws without replacement from ``N`` items of which
    ``K`` are successes, summed exactly in log space."""
    lo, hi = max(0, m - (N - K)), min(m, K)
    if x >= hi:
        return 1.0
    if x < lo:
        return 0.0

    def lcomb(a, b):
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    return _sum_exp([lcomb(K, i) + lcomb(N - K, m - i) - lcomb(N, m) for i in range(lo, x + 1)])


def normal_quantile(alpha: float) -> float:
    """z with P(Z > z) = ``alpha`` for a standard normal Z."""
    return NormalDist().inv_cdf(1.0 - alpha)


def _sum_exp(logs: list[float]) -> float:
    """A probability summed from the logs of its terms, capped at 1."""
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))
