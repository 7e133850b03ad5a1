"""DosCond (condense.methods.doscond): the dense GCN equals the suite's sparse GCN, the official mse
distance by hand, the one-step gradient matching (zero when the synthetic graphs are the real batch),
the Bernoulli relaxation, and a condensation of MUTAG stored as graphs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch
from torch_geometric.utils import to_dense_adj, to_dense_batch

import condense
from condense.data import load_dataset
from condense.methods import condenser_class, create_condenser
from condense.methods.doscond import DosCondConfig, dense_gcn, final_adjacency, match_mse, relaxed_adjacency
from condense.models import create_model


@pytest.fixture(scope="module")
def mutag():
    return load_dataset("MUTAG", "train")


def _gcn(train, **kw):
    torch.manual_seed(0)
    return create_model("gcn", train.num_features, 2, hidden=16, num_layers=2, pooling=kw.get("pooling", "sum"),
                        norm="none", dropout=0.0)


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_dense_gcn_equals_sparse(mutag, pooling):
    model = _gcn(mutag, pooling=pooling).eval()
    batch = Batch.from_data_list([mutag[i] for i in range(6)])
    n = int(max(mutag[i].num_nodes for i in range(6)))
    x, mask = to_dense_batch(batch.x, batch.batch, max_num_nodes=n)
    adj = to_dense_adj(batch.edge_index, batch.batch, max_num_nodes=n)
    # one graph at a time, unpadded: each dense graph is exactly its sparse one
    dense = torch.cat([dense_gcn(model, x[i:i + 1, :k], adj[i:i + 1, :k, :k])
                       for i, k in enumerate(mask.sum(1).tolist())])
    assert torch.allclose(dense, model(batch), atol=1e-5)


def test_match_mse_by_hand():
    assert float(match_mse([torch.tensor([1.0, 2.0])], [torch.tensor([1.0, 0.0])])) == pytest.approx(4.0)
    # over all parameters at once: (1² + 1²) / (1² + 1²)
    assert float(match_mse([torch.zeros(1), torch.zeros(1)], [torch.ones(1), torch.ones(1)])) == pytest.approx(1.0)


def test_one_step_gradients_match_when_synthetic_is_the_real_batch(mutag):
    model = _gcn(mutag)
    params = list(model.parameters())
    idx = [i for i in range(len(mutag)) if int(mutag[i].y) == 0][:4]
    graphs = [mutag[i] for i in idx]
    g_real = torch.autograd.grad(F.cross_entropy(model(Batch.from_data_list(graphs)), torch.zeros(4, dtype=torch.long)), params)
    # one graph at a time, unpadded, so that each is exactly the real one
    outs = torch.cat([dense_gcn(model, g.x.unsqueeze(0), to_dense_adj(g.edge_index, max_num_nodes=g.num_nodes))
                      for g in graphs])
    g_syn = torch.autograd.grad(F.cross_entropy(outs, torch.zeros(4, dtype=torch.long)), params, create_graph=True)
    assert float(match_mse(g_syn, g_real).detach()) < 1e-10


def test_relaxation_is_symmetric_without_self_loops():
    logits = torch.randn(3, 5, 5) * 4
    g = torch.Generator().manual_seed(0)
    a = relaxed_adjacency(logits, 1.0, g)
    assert torch.allclose(a, a.transpose(1, 2)) and float(a.diagonal(dim1=1, dim2=2).abs().max()) == 0
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    cold = relaxed_adjacency(logits * 1000, 0.01, g)  # confident logits at the coldest τ: the thresholded graph
    assert torch.equal((cold > 0.5).float(), final_adjacency(logits))


@pytest.mark.parametrize("field, value", [("iterations", 0), ("lr_adj", 0.0), ("pooling", "max"), ("nodes", 1)])
def test_config_ranges(field, value):
    with pytest.raises(ValueError, match=f"doscond.{field}"):
        DosCondConfig(**{field: value})


def test_condense_mutag_stores_graphs(mutag, tmp_path):
    s = create_condenser("doscond", "quick", iterations=6, decay_at=3, anneal_iterations=4, hidden=16).condense(
        mutag, 2, seed=0)
    assert s.kind == "graphs" and condenser_class("doscond").byte_matched
    assert s.graphs["labels"].tolist() == [0, 0, 1, 1]
    ptr = s.graphs["node_ptr"]
    assert (ptr[1:] - ptr[:-1]).tolist() == [18] * 4  # the official node count for MUTAG
    ei = s.graphs["edge_index"]
    assert bool((ei[0] != ei[1]).all())  # no self-loops
    pairs = set(map(tuple, ei.t().tolist()))
    assert all((b, a) in pairs for a, b in pairs)  # undirected: both directions stored
    assert s.extra["lr_adj"] == 0.1 and s.extra["final_loss"] >= 0
    condense.save(s, tmp_path / "d.h5")
    back = condense.load(tmp_path / "d.h5")
    assert torch.equal(back.graphs["edge_index"], ei)


def test_sub_batch_is_the_collated_graphs(mutag):
    from condense.methods.doscond import sub_batch
    big = Batch.from_data_list([mutag[i] for i in range(len(mutag))])
    pick = torch.tensor([7, 2, 30])
    x, ei, b = sub_batch(big, pick)
    ref = Batch.from_data_list([mutag[i] for i in sorted(pick.tolist())])
    assert torch.equal(x, ref.x.float()) and torch.equal(ei, ref.edge_index) and torch.equal(b, ref.batch)


def test_a_class_without_graphs_is_one_line_naming_the_dataset(mutag):
    from condense.data.graphs import GraphDataset

    only0 = [mutag[i] for i in range(len(mutag)) if int(mutag[i].y) == 0]
    ds = GraphDataset(only0, name="MUTAG", split="train", classes=mutag.classes, fingerprint="x" * 32,
                      source="test", split_info={})
    with pytest.raises(ValueError, match=r"^doscond: MUTAG has no training graph of class 1; it cannot be condensed$"):
        create_condenser("doscond", "quick", iterations=1).condense(ds, 1, seed=0)
