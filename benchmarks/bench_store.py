"""pytest-benchmark cases for the HDF5 format: save, load, and load + one pass over a DataLoader,
for CIFAR-10-shaped sets at IPC 10 and 50.

    python -m pytest benchmarks/bench_store.py --benchmark-columns=min,mean,max,rounds
"""
from __future__ import annotations

import pytest
import torch

import condense
from condense.store import SyntheticSet


def cifar_like(ipc: int) -> SyntheticSet:
    g = torch.Generator().manual_seed(ipc)
    n = 10 * ipc
    return SyntheticSet(kind="images", method="random", ipc=ipc, num_classes=10,
                        class_names=[str(i) for i in range(10)], source_dataset="cifar10",
                        source_fingerprint="0" * 32, seed=0,
                        images=torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                        mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26),
                        labels=torch.arange(10).repeat_interleave(ipc))


@pytest.mark.parametrize("ipc", [10, 50])
def test_save(benchmark, tmp_path, ipc):
    s = cifar_like(ipc)
    benchmark(condense.save, s, tmp_path / "x.h5")


@pytest.mark.parametrize("ipc", [10, 50])
def test_load(benchmark, tmp_path, ipc):
    path = condense.save(cifar_like(ipc), tmp_path / "x.h5")
    s = benchmark(condense.load, path)
    assert len(s) == 10 * ipc


@pytest.mark.parametrize("ipc", [10, 50])
def test_load_and_iterate_once(benchmark, tmp_path, ipc):
    path = condense.save(cifar_like(ipc), tmp_path / "x.h5")

    def run():
        loader = torch.utils.data.DataLoader(condense.load(path).dataset(), batch_size=128, shuffle=True)
        return sum(len(y) for _, y in loader)

    assert benchmark(run) == 10 * ipc
