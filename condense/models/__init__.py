"""The fixed architectures of the suite, behind a small registry.

>>> model = create_model("convnet", (3, 32, 32), 10)        # DC-style ConvNet-3
>>> model = create_model("gin", 7, 2, edge_dim=4)            # a graph classifier
"""
from __future__ import annotations

from ._registry import create_model, list_models, model_kind, register_model
from . import cifar, convnet, dc_family, mlp, small_torchvision  # noqa: F401  (registration)
from .convnet import ConvNet


# The graph models are registered here by name and built by their modules, which import torch_geometric
# when the first graph model is built: image work never loads it (it adds seconds to every start).
def _graph_model(conv: str):
    def build(in_shape, num_classes, **kw):
        from .gnn import graph_factory

        return graph_factory(conv)(in_shape, num_classes, **kw)

    build.__name__ = conv
    return build


def _official_mirage_model(conv: str):
    def build(in_shape, num_classes, **kw):
        from .gnn_mirage import official_factory

        return official_factory(conv)(in_shape, num_classes, **kw)

    build.__name__ = f"{conv}_mirage"
    return build


for _conv in ("gcn", "gin", "gat"):
    register_model(_conv, kind="graphs")(_graph_model(_conv))
for _conv in ("gcn", "gin"):   # Mirage's official GNNs (condense.models.gnn_mirage)
    register_model(f"{_conv}-mirage", kind="graphs")(_official_mirage_model(_conv))


def __getattr__(name: str):
    if name == "GraphClassifier":
        from .gnn import GraphClassifier

        return GraphClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_model", "list_models", "model_kind", "register_model", "ConvNet", "GraphClassifier"]
