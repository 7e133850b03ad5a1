"""Packing real graphs (random subsets, the full split) into a ``graphs`` set."""
from __future__ import annotations

import torch

from ..store import pack_graphs


def graph_parts(train, idx: torch.Tensor) -> dict:
    graphs = [train[int(i)] for i in idx]
    return {"kind": "graphs", "graphs": pack_graphs(graphs), "extra": {"source_indices": idx.tolist()}}
