"""condense: a benchmark suite for dataset condensation.

>>> import condense
>>> synset = condense.load("digits-random-ipc10.h5")        # doctest: +SKIP
>>> loader = torch.utils.data.DataLoader(synset.dataset(), batch_size=64, shuffle=True)  # doctest: +SKIP
"""
from __future__ import annotations

import warnings as _warnings

_warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
_warnings.filterwarnings("ignore", message=r".*torch\.jit\.(_overload|script|trace).*deprecated.*")

from ._version import __version__  # noqa: E402

__all__ = ["__version__", "FormatError", "SyntheticSet", "load", "save", "validate", "load_dataset",
           "create_model"]


_FORMAT_NAMES = ("FormatError", "SyntheticSet", "load", "save", "validate")


def __getattr__(name):
    """Imported on first use, so that ``import condense.tta`` (the report) needs no torch, and data and
    models load torch_geometric and torchvision only when asked for."""
    if name in _FORMAT_NAMES:
        from . import format as _format  # lazily (PEP 562): `import condense.tta` must not load torch

        return getattr(_format, name)
    if name == "load_dataset":
        from .data import load_dataset  # lazily: torchvision and torch_geometric load on first use

        return load_dataset
    if name == "create_model":
        from .models import create_model  # lazily, as above

        return create_model
    raise AttributeError(f"module 'condense' has no attribute {name!r}")
