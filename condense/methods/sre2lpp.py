"""SRe2L++, CV-DD's single-teacher baseline (Cui et al., 2025, §4): CV-DD's pipeline with a committee of
one -- the pool's first teacher (ResNet-18 in the paper pool) -- for synthesis and relabelling alike."""
from __future__ import annotations

from dataclasses import dataclass

from .base import register_condenser
from .cvdd import CVDD, CVDDConfig


@dataclass(frozen=True)
class SRe2LPPConfig(CVDDConfig):
    committee: int = 1


@register_condenser
class SRe2LPP(CVDD):
    """SRe2L++: CV-DD's pipeline with a committee of one, the pool's first teacher (ResNet-18 in the
    paper pool), for synthesis and relabelling alike (the paper's single-teacher baseline)."""

    name = "sre2l++"
    Config = SRe2LPPConfig
    default_run = False  # the ablation: it runs where asked, and in soft-label tables
