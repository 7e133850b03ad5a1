"""Graph classifiers on torch_geometric layers: GCN, GIN (GINE with edge features) and GAT.

``forward(data)`` or ``forward(x, edge_index, batch, edge_attr)``. When a ``pool_mask`` is given
(or the batch carries ``root_mask`` and ``pool_roots`` is on), the readout pools only those nodes:
Mirage trains on computation-tree summaries by pooling their root nodes.

``norm`` is ``"batchnorm"`` (a BatchNorm after every layer and inside GIN's MLP) or ``"none"``.
GCN normalises by node degrees (Kipf & Welling, eq. 2: Â = D̃^-½ (A + I) D̃^-½); a graph may carry
``node_degree``, each node's degree in the graph it was taken from, and then those degrees are used.
Mirage's computation trees carry them: a tree's leaves have no children, yet their messages must be
weighted by their degree in the source graph for the root to embed as it does there.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch_geometric.nn import GATConv, GCNConv, GINConv, GINEConv, global_add_pool, global_mean_pool

from .dropout import dropout

POOLS = {"sum": global_add_pool, "mean": global_mean_pool}
NORMS = ("batchnorm", "none")


def gcn_edges(edge_index: torch.Tensor, num_nodes: int, degree: torch.Tensor | None = None):
    """Edges with self-loops and their symmetric GCN weights 1/sqrt(d̃_u d̃_v), d̃ = degree + 1.

    ``degree`` defaults to each node's in-degree here; a computation tree passes its nodes' degrees
    in the source graph (Kipf & Welling, eq. 2)."""
    if degree is None:
        degree = torch.bincount(edge_index[1], minlength=num_nodes)
    d = degree.to(torch.float32) + 1.0
    inv = d.rsqrt()
    loops = torch.arange(num_nodes, device=edge_index.device)
    ei = torch.cat([edge_index, torch.stack([loops, loops])], 1)
    return ei, inv[ei[0]] * inv[ei[1]]


class GraphClassifier(nn.Module):
    def __init__(self, conv: str, in_dim: int, num_classes: int, hidden: int = 64, num_layers: int = 3,
                 pooling: str = "sum", dropout: float = 0.0, norm: str = "batchnorm",
                 edge_dim: int | None = None, heads: int = 1):
        super().__init__()
        if pooling not in POOLS:
            raise ValueError(f"unknown pooling {pooling!r}; expected sum or mean")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        self.conv_name, self.pooling, self.dropout, self.norm = conv, pooling, dropout, norm
        self.uses_edge_attr = bool(edge_dim) and conv in ("gin", "gat")
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for i in range(num_layers):
            d_in = in_dim if i == 0 else hidden
            self.convs.append(self._conv(conv, d_in, hidden, edge_dim, heads))
            self.norms.append(nn.BatchNorm1d(hidden) if norm == "batchnorm" else nn.Identity())
        self.head = nn.Linear(hidden, num_classes)

    def _conv(self, conv, d_in, d_out, edge_dim, heads):
        if conv == "gcn":  # weights from gcn_edges: the same as GCNConv's own on a plain graph
            return GCNConv(d_in, d_out, add_self_loops=False, normalize=False)
        if conv == "gin":
            bn = [nn.BatchNorm1d(d_out)] if self.norm == "batchnorm" else []
            mlp = nn.Sequential(nn.Linear(d_in, d_out), *bn, nn.ReLU(), nn.Linear(d_out, d_out))
            return GINEConv(mlp, edge_dim=edge_dim) if self.uses_edge_attr else GINConv(mlp, train_eps=True)
        if conv == "gat":
            return GATConv(d_in, d_out, heads=heads, concat=False,
                           edge_dim=edge_dim if self.uses_edge_attr else None)
        raise ValueError(f"unknown graph conv {conv!r}")

    def embed(self, x, edge_index, batch=None, edge_attr=None, pool_mask=None, num_graphs=None, degree=None):
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        h = x
        if self.conv_name == "gcn":
            gcn_ei, gcn_w = gcn_edges(edge_index, x.shape[0], degree)
        for conv, norm in zip(self.convs, self.norms):
            if self.conv_name == "gcn":
                h = conv(h, gcn_ei, gcn_w)
            else:
                h = conv(h, edge_index, edge_attr) if self.uses_edge_attr else conv(h, edge_index)
            h = torch.relu(norm(h))
            h = dropout(h, self.dropout, self.training)
        size = num_graphs if num_graphs is not None else int(batch.max()) + 1 if batch.numel() else 0
        if pool_mask is not None:
            h, batch = h[pool_mask], batch[pool_mask]
        return POOLS[self.pooling](h, batch, size=size)

    def forward(self, data_or_x, edge_index=None, batch=None, edge_attr=None, pool_mask=None):
        if edge_index is None:  # a torch_geometric Data / Batch
            d = data_or_x
            ng = getattr(d, "num_graphs", None)
            return self.head(self.embed(d.x, d.edge_index, getattr(d, "batch", None),
                                        getattr(d, "edge_attr", None), pool_mask, ng, getattr(d, "node_degree", None)))
        return self.head(self.embed(data_or_x, edge_index, batch, edge_attr, pool_mask))
