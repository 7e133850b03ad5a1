"""Shared fixtures. Real-data tests run where ``CONDENSE_DATA`` points at the prepared datasets and
are skipped with a reason elsewhere; the embedded digits set works everywhere."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", category=FutureWarning)
torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path | None:
    root = os.environ.get("CONDENSE_DATA")
    return Path(root) if root and Path(root).is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("CONDENSE_DATA is not set to a folder of prepared real datasets")
    return root


def need(root: Path, *parts: str) -> Path:
    p = root.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{'/'.join(parts)} is not under CONDENSE_DATA")
    return p


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty CONDENSE_CACHE, so a test sees what a first run on a new machine sees."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CONDENSE_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def digits():
    from condense.data import load_dataset

    return {s: load_dataset("digits", s) for s in ("train", "val", "test")}


def kill_teachers_after(monkeypatch, saves: int = 2):
    """Teacher training raises KeyboardInterrupt right after its ``saves``-th checkpoint write (a run
    killed there); returns a function that puts the real writer back."""
    import condense.teachers as teachers

    real, calls = teachers._atomic_torch_save, []

    def killed(obj, path):
        real(obj, path)
        calls.append(path)
        if len(calls) == saves:
            raise KeyboardInterrupt

    monkeypatch.setattr(teachers, "_atomic_torch_save", killed)
    return lambda: monkeypatch.setattr(teachers, "_atomic_torch_save", real)


def tagged_dsa(*values: float):
    """A DSA whose families add a constant each (``values``): which family an image got, readable."""
    import torch.nn as nn

    from condense.augment import DSA

    class Tag(nn.Module):
        def __init__(self, v):
            super().__init__()
            self.v = v

        def forward(self, x):
            return x + self.v

    aug = DSA(("color", "crop", "cutout", "flip", "scale", "rotate")[:len(values)])
    aug.ops = nn.ModuleList([Tag(v) for v in values])
    return aug
