"""The fixed architectures of the suite, behind a small registry.

>>> model = create_model("convnet", (3, 32, 32), 10)        # DC-style ConvNet-3
>>> model = create_model("gin", 7, 2, edge_dim=4)            # a graph classifier
"""
from __future__ import annotations

from ._registry import create_model, list_models, model_kind, register_model
from . import cifar, convnet, dc_family, mlp, small_torchvision  # noqa: F401  (registration)
from .convnet import ConvNet


def _graph_model(conv: str, official: bool):
    """The constructor of a graph model, registered here by name: its module (which imports torch_geometric)
    loads when the first graph model is built, so image work never loads it (seconds on every start)."""
    def build(in_shape, num_classes, **kw):
        if official:   # Mirage's official GNNs
            from .gnn_mirage import OfficialMirageGNN as model
        else:
            from .gnn import GraphClassifier as model
        in_dim = in_shape if isinstance(in_shape, int) else int(in_shape[0])
        return model(conv, in_dim, num_classes, **kw)

    build.__name__ = f"{conv}_mirage" if official else conv
    return build


for _conv in ("gcn", "gin", "gat"):
    register_model(_conv, kind="graphs")(_graph_model(_conv, official=False))
for _conv in ("gcn", "gin"):
    register_model(f"{_conv}-mirage", kind="graphs")(_graph_model(_conv, official=True))


def __getattr__(name: str):
    if name == "GraphClassifier":
        from .gnn import GraphClassifier

        return GraphClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_model", "list_models", "model_kind", "register_model", "ConvNet", "GraphClassifier"]
