"""Packing real graphs (random subsets, the full split) into a ``graphs`` set."""
from __future__ import annotations

import torch

from ..format import pack_graphs
from ._common import CondenseOutput


def graph_parts(train, idx: torch.Tensor) -> CondenseOutput:
    """The graphs ``idx`` of ``train`` as a set's ``graphs`` part."""
    graphs = [train[int(i)] for i in idx]
    return CondenseOutput({"kind": "graphs", "graphs": pack_graphs(graphs)}, extra={"source_indices": idx.tolist()})
