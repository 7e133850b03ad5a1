"""Per-dataset benchmark settings: time-to-accuracy targets (test accuracy, %) and defaults."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DatasetConfig:
    """``quick_protocol``: protocol fields (epochs, RS2's rounds, checkpoints) every protocol takes on this
    dataset under the runner's ``quick`` preset; ``quick_condensers``: condenser config fields set under
    that preset, as ``("method.field", value)`` pairs. Both size the main job's embedded sets for two CPU
    cores (its time: ``results/main-job/COMMAND``); ``--epochs``, ``--checkpoints`` and ``--set`` override
    them."""

    targets: tuple[float, ...]
    archs: tuple[str, ...] = ("convnet",)
    protocol: str = "dc"
    quick_protocol: tuple[tuple[str, object], ...] = ()
    quick_condensers: tuple[tuple[str, object], ...] = ()

    def condenser_overrides(self, method: str) -> dict:
        """The ``quick_condensers`` fields of ``method``."""
        return {k.split(".", 1)[1]: v for k, v in self.quick_condensers if k.split(".", 1)[0] == method}


# The main job's fkd table on digits trains this many epochs (benchmarks/sweep/spec.py: NATIVE_TABLES, half the
# official 300), and CV-DD's and SRe2L++'s digits sets store replay labels for as many, so that the dc table's
# sets are the fkd table's (the first set seed condensed once).
DIGITS_REPLAY_EPOCHS = 150

DATASET_CONFIGS: dict[str, DatasetConfig] = {
    "digits": DatasetConfig((80.0, 90.0), quick_protocol=(("epochs", 100), ("checkpoints", 25)),
                            quick_condensers=(("infer.iterations", 50), ("cvdd.iterations", 25),
                                              ("cvdd.replay_epochs", DIGITS_REPLAY_EPOCHS), ("sre2l++.iterations", 25),
                                              ("sre2l++.replay_epochs", DIGITS_REPLAY_EPOCHS))),
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
    """The settings of ``name``; a graph set under the official Mirage split (``NCI1@mirage``) takes its
    set's targets with the official GNNs and the ``mirage-official`` protocol."""
    base, _, rule = name.partition("@")
    cfg = DATASET_CONFIGS.get(base, GRAPH_DEFAULT if kind == "graphs" else IMAGE_DEFAULT)
    if rule == "mirage":
        return replace(cfg, archs=("gcn-mirage", "gin-mirage"), protocol="mirage-official")
    return cfg
