"""The ``graphs`` part: a list of PyG ``Data`` packed into flat arrays and back (``docs/format.md`` §2).

Graphs are concatenated with PyG's own ``collate`` and cut apart with ``separate``, without the
index increment: the stored ``edge_index`` of each graph counts from its own first node, and
``node_ptr``/``edge_ptr`` are the collate slices of ``x`` and ``edge_index``. PyG is imported on the
first graph packed or unpacked, so that image work never loads it (it adds seconds to every start).
"""
from __future__ import annotations

from typing import Any

import torch

#: per-node and per-graph optional parts, with the dtype a model reads them in
_NODE_PARTS = {"root_mask": torch.bool, "node_degree": torch.long}
_GRAPH_PARTS = {"frequency": torch.float}


def pack_graphs(graphs: list, **extra) -> dict[str, Any]:
    """Pack a list of PyG ``Data`` into the ``graphs`` part's flat arrays; ``extra`` parts are added as given."""
    if not graphs:
        out: dict[str, Any] = {"x": torch.zeros(0, 0), "edge_index": torch.zeros(2, 0, dtype=torch.long),
                               "node_ptr": torch.zeros(1, dtype=torch.long),
                               "edge_ptr": torch.zeros(1, dtype=torch.long),
                               "labels": torch.zeros(0, dtype=torch.long)}
        out.update(extra)
        return out
    from torch_geometric.data import Data
    from torch_geometric.data.collate import collate

    with_attr = getattr(graphs[0], "edge_attr", None) is not None
    slim = []
    for d in graphs:
        item = Data(x=d.x.float(), edge_index=d.edge_index.long(), y=torch.tensor([int(d.y)], dtype=torch.long))
        if with_attr:
            item.edge_attr = d.edge_attr.float()
        slim.append(item)
    batch, slices, _ = collate(Data, slim, increment=False, add_batch=False)
    out = {"x": batch.x, "edge_index": batch.edge_index, "node_ptr": slices["x"].long(),
           "edge_ptr": slices["edge_index"].long(), "labels": batch.y}
    if with_attr:
        out["edge_attr"] = batch.edge_attr
    out.update(extra)
    return out


def unpack_graphs(g: dict) -> list:
    """The stored ``graphs`` part as a list of PyG ``Data``, one per graph, with its optional parts."""
    from torch_geometric.data import Data
    from torch_geometric.data.separate import separate

    n = int(g["node_ptr"].shape[0]) - 1
    per_graph = torch.arange(n + 1)
    batch = Data(x=g["x"].float(), edge_index=g["edge_index"].long(), y=g["labels"].long())
    slices = {"x": g["node_ptr"].long(), "edge_index": g["edge_ptr"].long(), "y": per_graph}
    if "edge_attr" in g:
        batch.edge_attr, slices["edge_attr"] = g["edge_attr"].float(), g["edge_ptr"].long()
    for key, dtype in _NODE_PARTS.items():
        if key in g:
            batch[key], slices[key] = g[key].to(dtype), g["node_ptr"].long()
    for key, dtype in _GRAPH_PARTS.items():
        if key in g:
            batch[key], slices[key] = g[key].to(dtype), per_graph
    return [separate(Data, batch, i, slices, decrement=False) for i in range(n)]
