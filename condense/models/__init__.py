"""The fixed architectures of the suite, behind a small registry.

>>> model = create_model("convnet", (3, 32, 32), 10)        # DC-style ConvNet-3
>>> model = create_model("gin", 7, 2, edge_dim=4)            # a graph classifier
"""
from __future__ import annotations

from ._registry import create_model, list_models, model_kind, register_model
from . import cifar, convnet, dc_family, gnn, gnn_mirage, mlp, small_torchvision  # noqa: F401  (registration)
from .convnet import ConvNet
from .gnn import GraphClassifier

__all__ = ["create_model", "list_models", "model_kind", "register_model", "ConvNet", "GraphClassifier"]
