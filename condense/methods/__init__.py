"""Condensers, one module per method, behind a registry.

>>> from condense.methods import create_condenser, list_condensers
>>> synset = create_condenser("random").condense(train, ipc=10, seed=0)   # doctest: +SKIP
"""
from __future__ import annotations

from . import baselines, cvdd, dm, doscond, herding, infer, mirage, mtt, random_kd, rded, rs2, sre2lpp  # noqa: F401  (registration)
from ._common import CondenseOutput, ReplayLabels
from .base import (Condenser, condenser_class, condenser_module, create_condenser, default_condensers,
                   list_condensers, register_condenser, role_method)
from .plugins import load_plugins

load_plugins()  # third-party condensers (entry points ``condense.condensers``), after the built-ins

__all__ = ["CondenseOutput", "Condenser", "ReplayLabels", "condenser_class", "condenser_module", "create_condenser",
           "default_condensers", "load_plugins", "role_method",
           "list_condensers", "register_condenser"]
