"""A timm-style registry: ``create_model(name, in_shape, num_classes, **kw)``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, tuple[Callable[..., nn.Module], str]] = {}


def register_model(name: str, kind: str = "images"):
    """Register a constructor ``fn(in_shape, num_classes, **kw)`` under ``name``."""

    def deco(fn):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = (fn, kind)
        return fn

    return deco


def list_models(kind: str | None = None) -> list[str]:
    return sorted(n for n, (_, k) in _MODELS.items() if kind is None or k == kind)


def model_kind(name: str) -> str:
    _check(name)
    return _MODELS[name][1]


def _check(name: str) -> None:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")


def create_model(name: str, in_shape, num_classes: int, **kw) -> nn.Module:
    """Build a fresh, randomly initialised model.

    ``in_shape`` is ``(C, H, W)`` for image models and the node-feature width for graph models.
    """
    _check(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    return _MODELS[name][0](in_shape, num_classes, **kw)
