"""The graph student's fast paths: batches gathered from one collated copy of a set are the batches
torch_geometric collates, and the CPU dropout mask has dropout's law."""
from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from condense.data import load_dataset
from condense.graph_batch import CollatedGraphs, GraphBatch
from condense.methods import create_condenser
from condense.models import create_model
from condense.models.dropout import dropout, keep_mask

from .conftest import need

FIELDS = ("x", "edge_index", "batch", "y", "edge_attr", "root_mask", "node_degree", "frequency")


def _same_batch(graphs, idx):
    ours = CollatedGraphs(graphs).gather(idx)
    pyg = Batch.from_data_list([graphs[int(i)] for i in idx])
    assert isinstance(ours, GraphBatch) and ours.num_graphs == pyg.num_graphs == len(idx)
    for k in FIELDS:
        if k in pyg:
            a, b = getattr(ours, k), pyg[k]
            assert a.dtype == b.dtype and torch.equal(a, b), k
        else:
            assert not hasattr(ours, k), k
    return ours, pyg


@pytest.mark.parametrize("dataset,method,ipc", [("NCI1", "random", 100), ("MUTAG", "random", 10), ("MUTAG", "mirage", 3)])
def test_a_gathered_batch_is_the_batch_torch_geometric_collates(data_root, dataset, method, ipc):
    need(data_root, "TUDataset", dataset)
    graphs = create_condenser(method).condense(load_dataset(dataset, "train"), ipc, seed=0).dataset()
    g = torch.Generator().manual_seed(1)
    for size in (1, 7, 32):
        idx = torch.randint(len(graphs), (size,), generator=g)    # repeats, as frequency draws give
        ours, pyg = _same_batch(graphs, torch.cat([idx, idx[:1]]))
    arch = "gin" if dataset == "MUTAG" else "gcn"
    torch.manual_seed(0)
    model = create_model(arch, int(graphs[0].x.shape[1]), 2, hidden=16, num_layers=2, norm="none",
                         edge_dim=int(graphs[0].edge_attr.shape[1]) if "edge_attr" in graphs[0] else None).eval()
    mask = getattr(ours, "root_mask", None)
    assert torch.equal(model(ours, pool_mask=mask), model(pyg, pool_mask=pyg.get("root_mask")))


def test_empty_graphs_and_unknown_fields():
    def graph(n, e, **extra):
        return Data(x=torch.randn(n, 3), edge_index=torch.randint(max(n, 1), (2, e)) if n else torch.zeros(2, 0, dtype=torch.long),
                    y=torch.tensor([n % 2]), **extra)

    graphs = [graph(4, 6), graph(1, 0), graph(5, 9), graph(2, 0)]
    _same_batch(graphs, [3, 0, 1, 2, 0])
    odd = [graph(3, 2, pos=torch.randn(3, 2)) for _ in range(3)]   # a field the gather does not know
    bank = CollatedGraphs(odd)
    assert not bank.collated and isinstance(bank.gather([2, 0]), Batch)
    mixed = [graph(3, 2), graph(3, 2, edge_attr=torch.randn(2, 4))]  # graphs that disagree on their fields
    assert not CollatedGraphs(mixed).collated


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_each_element_with_probability_one_minus_p_independently(p):
    torch.manual_seed(0)
    n = 1 << 20
    keep = keep_mask((n,), p)
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(keep.float().mean().item() - (1 - p)) < 5 * sd
    pairs = (keep[0::2] & keep[1::2]).float().mean().item()   # the two elements of one 64-bit draw
    assert abs(pairs - (1 - p) ** 2) < 5 * math.sqrt((1 - p) ** 2 * (1 - (1 - p) ** 2) / (n // 2))
    shifted = (keep[:-1] & keep[1:]).float().mean().item()  # neighbours across draws
    assert abs(shifted - (1 - p) ** 2) < 5 * math.sqrt((1 - p) ** 2 * (1 - (1 - p) ** 2) / (n // 2))


def test_dropout_scales_what_it_keeps_and_its_gradient_is_the_mask():
    x = torch.randn(300, 64, requires_grad=True)
    torch.manual_seed(3)
    y = dropout(x, 0.3, True)
    kept = y != 0
    assert 0.6 < kept.float().mean() < 0.8
    assert torch.allclose(y[kept], x[kept] / 0.7)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.7)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.3, True), y)          # the seeded generator decides the mask
    assert dropout(x, 0.3, False) is x and dropout(x, 0.0, True) is x
    assert torch.count_nonzero(dropout(x, 1.0, True)) == 0
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\], got 1.5"):
        dropout(x, 1.5, True)
