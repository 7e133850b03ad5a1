"""Per-dataset benchmark settings: time-to-accuracy targets (test accuracy, %) and defaults."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetConfig:
    targets: tuple[float, ...]
    archs: tuple[str, ...] = ("convnet",)
    protocol: str = "dc"


DATASET_CONFIGS: dict[str, DatasetConfig] = {
    "digits": DatasetConfig((80.0, 90.0)),
    "mnist": DatasetConfig((90.0, 95.0, 98.0)),
    "fashion-mnist": DatasetConfig((70.0, 80.0, 85.0)),
    "cifar10": DatasetConfig((30.0, 40.0, 50.0)),
    "cifar100": DatasetConfig((10.0, 20.0, 30.0)),
    "svhn": DatasetConfig((50.0, 70.0, 85.0)),
    "tinyimagenet": DatasetConfig((10.0, 20.0)),
    "MUTAG": DatasetConfig((70.0, 80.0, 85.0), ("gcn", "gin"), "graph"),
    "PROTEINS": DatasetConfig((65.0, 70.0, 75.0), ("gcn", "gin"), "graph"),
    "NCI1": DatasetConfig((60.0, 70.0, 75.0), ("gcn", "gin"), "graph"),
}

GRAPH_DEFAULT = DatasetConfig((60.0, 70.0), ("gcn", "gin"), "graph")
IMAGE_DEFAULT = DatasetConfig((50.0,))


def dataset_config(name: str, kind: str = "images") -> DatasetConfig:
    return DATASET_CONFIGS.get(name, GRAPH_DEFAULT if kind == "graphs" else IMAGE_DEFAULT)
