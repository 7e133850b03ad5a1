"""The official Mirage GNNs, quirks included (frigategnn/Mirage, ``DD/model/gnns_edge2.py`` with the
classifier of ``NCI1/graph-nci-finalize-reduce-curr.py``), for the ``mirage-official`` protocol only.

They exist to reproduce the official figures, not as good models:

- the input is the node's label index (the official NCI1 preparation turns the one-hot row into its
  index; here the index is the one-hot row's argmax) through an embedding table of OGB's
  ``AtomEncoder`` size (119 rows, Xavier-uniform);
- every edge carries attribute 1 (the official NCI1 preparation), so a layer's edge embedding is one
  learned row of an OGB ``BondEncoder``-sized table (5 rows);
- **GCN** (``gcn-mirage``): ``x ← W x``; each message is ``relu(W_e [x_j ‖ e]) + n_ij`` with
  ``n_ij = d_i^-½ d_j^-½``, ``d = out-degree + 1`` taken on the graph at hand (a summary's tree, not
  its source graph): the normalisation is **added** to the message, not multiplied, so it is a
  constant that grows with the node's in-degree whatever the weights; plus ``relu(x + r) / d`` for the
  node itself (``r`` a learned root embedding);
- **GIN** (``gin-mirage``): ``MLP((1 + ε) x + Σ_j relu(x_j + e))``, the MLP ``h → 2h → h``;
- ReLU and dropout after every layer but the last (dropout only), sum pooling over the roots of a
  summary or every node of a real graph, dropout again, then a linear head.

With the official weight decay of 100 the weights stay near zero and the summed constants make the
score grow with a graph's node count; ``docs/methods.md`` says what that does to the figures.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_geometric.nn import MessagePassing, global_add_pool
from torch_geometric.utils import degree

from .dropout import dropout

ATOM_ROWS = 119   # OGB AtomEncoder's first table (atomic number)
BOND_ROWS = 5     # OGB BondEncoder's first table (bond type); every official edge attribute is 1


def _table(rows: int, dim: int) -> nn.Embedding:
    e = nn.Embedding(rows, dim)
    nn.init.xavier_uniform_(e.weight)   # as OGB's encoders initialise theirs
    return e


class OfficialGCNConv(MessagePassing):
    """The official ``GCNConvEdge``: the degree term added to each message."""

    def __init__(self, dim: int):
        super().__init__(aggr="add")
        self.linear = nn.Linear(dim, dim)
        self.root_emb = nn.Embedding(1, dim)
        self.bond = _table(BOND_ROWS, dim)
        self.edge_mlp = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        e = self.bond.weight[1].expand(edge_index.shape[1], -1)
        x = self.linear(x)
        row, col = edge_index
        deg = degree(row, x.shape[0], dtype=x.dtype) + 1
        inv = deg.pow(-0.5)
        norm = inv[row] * inv[col]
        return self.propagate(edge_index, x=x, e=e, norm=norm) + F.relu(x + self.root_emb.weight) / deg.view(-1, 1)

    def message(self, x_j, e, norm):
        return F.relu(self.edge_mlp(torch.cat([x_j, e], 1))) + norm.view(-1, 1)


class OfficialGINConv(MessagePassing):
    """The official ``GINConvEdge``: ``MLP((1 + ε) x + Σ relu(x_j + e))``."""

    def __init__(self, dim: int):
        super().__init__(aggr="add")
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.eps = nn.Parameter(torch.zeros(1))
        self.bond = _table(BOND_ROWS, dim)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        e = self.bond.weight[1].expand(edge_index.shape[1], -1)
        return self.mlp((1 + self.eps) * x + self.propagate(edge_index, x=x, e=e))

    def message(self, x_j, e):
        return F.relu(x_j + e)


class OfficialMirageGNN(nn.Module):
    """The official classifier around :class:`OfficialGCNConv` or :class:`OfficialGINConv`."""

    def __init__(self, conv: str, in_dim: int, num_classes: int, hidden: int = 128, num_layers: int = 2,
                 dropout: float = 0.5, pooling: str = "sum", norm: str = "none", **_ignored):
        super().__init__()
        if pooling != "sum" or norm != "none":
            raise ValueError(f"the official Mirage {conv} pools by sum without normalisation layers, "
                             f"got pooling={pooling!r}, norm={norm!r}")
        if in_dim > ATOM_ROWS:
            raise ValueError(f"the official Mirage input is a label index below {ATOM_ROWS}; got {in_dim} features")
        layer = {"gcn": OfficialGCNConv, "gin": OfficialGINConv}[conv]
        self.atom = _table(ATOM_ROWS, hidden)
        self.convs = nn.ModuleList(layer(hidden) for _ in range(num_layers))
        self.dropout = dropout
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, data, pool_mask=None):
        h = self.atom(data.x.argmax(1))
        for i, conv in enumerate(self.convs):
            h = conv(h, data.edge_index)
            h = dropout(h if i == len(self.convs) - 1 else F.relu(h), self.dropout, self.training)
        batch = data.batch if getattr(data, "batch", None) is not None else \
            torch.zeros(h.shape[0], dtype=torch.long, device=h.device)
        size = getattr(data, "num_graphs", None) or (int(batch.max()) + 1 if batch.numel() else 0)
        if pool_mask is not None:
            h, batch = h[pool_mask], batch[pool_mask]
        pooled = global_add_pool(h, batch, size=size)
        return self.head(dropout(pooled, self.dropout, self.training))
