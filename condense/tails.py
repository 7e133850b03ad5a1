"""One-sided tail probabilities for the screen's tests (:mod:`condense.curves`): binomial,
hypergeometric and normal."""
from __future__ import annotations

from statistics import NormalDist

from scipy.special import bdtr


def binomial_cdf(x: int, k: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(k, p): scipy's ``bdtr``, the regularised incomplete beta function
    (exact to rounding in either tail; ``scipy.stats.binom`` underflows to 0 below about 1e-270)."""
    if p <= 0.0 or x >= k:
        return 1.0
    if p >= 1.0 or x < 0:
        return 0.0
    return float(bdtr(x, k, p))


def hypergeometric_cdf(x: int, m: int, N: int, K: int) -> float:
    """P(X <= x) for X the successes among ``m`` draws without replacement from ``N`` items of which
    ``K`` are successes (scipy's ``hypergeom``)."""
    lo, hi = max(0, m - (N - K)), min(m, K)
    if x >= hi:
        return 1.0
    if x < lo:
        return 0.0
    # On use: scipy.stats takes 0.5 s to import, and only a screen's wrong-images test needs it.
    from scipy.stats import hypergeom

    return float(hypergeom.cdf(x, N, K, m))


def normal_quantile(alpha: float) -> float:
    """z with P(Z > z) = ``alpha`` for a standard normal Z."""
    return NormalDist().inv_cdf(1.0 - alpha)
