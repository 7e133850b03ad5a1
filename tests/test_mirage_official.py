"""The official Mirage protocol: its split, its GNNs with their quirk, its training schedule."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from condense.configs import dataset_config
from condense.data import load_dataset
from condense.models import create_model
from condense.protocols import get_protocol


def test_the_official_split_is_torch_randperm_under_seed_0_test_first():
    """``MUTAG@mirage``: PyG's ``dataset.shuffle()`` after ``torch.manual_seed(0)``, then ⌈n/10⌉ test, ⌈n/10⌉
    val, the rest train (188 graphs: 19, 19, 150); edge attributes dropped, a fingerprint of its own."""
    torch.manual_seed(0)
    perm = torch.randperm(188).tolist()   # what the official script's global generator gives
    splits = {s: load_dataset("MUTAG@mirage", s) for s in ("train", "val", "test")}
    assert splits["test"].positions.tolist() == perm[:19] and splits["val"].positions.tolist() == perm[19:38]
    assert splits["train"].positions.tolist() == perm[38:]
    assert all(g.edge_attr is None for g in splits["train"])
    assert splits["train"].fingerprint != load_dataset("MUTAG", "train").fingerprint
    assert "official Mirage split" in splits["train"].source


def test_node_count_alone_reaches_the_official_mutag_figure_on_the_official_split():
    """The number of nodes ranks the official MUTAG test split at 95.5 ROC-AUC (87.2 on the suite's split):
    the figure the official code reports for Mirage."""
    from condense.structure import fit_and_score

    r = fit_and_score("node-count", load_dataset("MUTAG@mirage", "train"), load_dataset("MUTAG@mirage", "test"))
    assert round(r["roc_auc"], 1) == 95.5
    r = fit_and_score("node-count", load_dataset("MUTAG", "train"), load_dataset("MUTAG", "test"))
    assert round(r["roc_auc"], 1) == 87.2


def test_an_unknown_split_rule_is_one_line():
    from condense.data._common import DatasetError

    with pytest.raises(DatasetError, match="MUTAG@other: unknown split rule 'other'; known: 'mirage'"):
        load_dataset("MUTAG@other", "train")
    with pytest.raises(ValueError, match="a name, not a path"):
        load_dataset("MUTAG@../x", "train")


def test_the_official_split_selects_the_official_gnns_and_protocol():
    cfg = dataset_config("NCI1@mirage", "graphs")
    assert cfg.archs == ("gcn-mirage", "gin-mirage") and cfg.protocol == "mirage-official"
    assert cfg.targets == dataset_config("NCI1", "graphs").targets
    p = get_protocol("mirage-official")
    assert (p.kind, p.weight_decay, p.batch_size, p.epochs, p.frequency_mode, p.select, p.check_initial,
            p.budget) == ("graphs", 100.0, 500, 300, "once", "val-auc", True, "epochs")


def test_the_official_gcn_adds_the_normalisation_to_each_message():
    """With every weight at zero, a layer still outputs, on every feature, the sum over a node's in-edges of
    d_i^-½ d_j^-½ (d = out-degree + 1): the term is added to the message, not multiplied by it."""
    model = create_model("gcn-mirage", 7, 2)
    conv = model.convs[0]
    for q in conv.parameters():
        torch.nn.init.zeros_(q)
    ei = torch.tensor([[1, 2, 3, 0, 0, 0], [0, 0, 0, 1, 2, 3]])   # a star: centre 0
    out = conv(torch.randn(4, 128), ei)
    want = torch.tensor([3 / (4 * 2) ** 0.5, 1 / 8 ** 0.5, 1 / 8 ** 0.5, 1 / 8 ** 0.5])
    assert torch.allclose(out, want.view(-1, 1).expand(4, 128), atol=1e-6)   # d = 4 at the centre, 2 elsewhere


def test_the_official_models_pool_roots_on_summaries_and_ignore_edge_features():
    for arch in ("gcn-mirage", "gin-mirage"):
        torch.manual_seed(0)
        model = create_model(arch, 7, 2).eval()
        g = Data(x=torch.eye(7)[[0, 1, 2]], edge_index=torch.tensor([[1, 2], [0, 0]]), y=torch.tensor([1]))
        with_attr = Data(**{k: v for k, v in g.items()}, edge_attr=torch.randn(2, 4))
        b, ba = Batch.from_data_list([g]), Batch.from_data_list([with_attr])
        assert torch.equal(model(b), model(ba))
        roots = torch.tensor([True, False, False])
        assert not torch.allclose(model(b, pool_mask=roots), model(b))
    with pytest.raises(ValueError, match="pools by sum without normalisation"):
        create_model("gcn-mirage", 7, 2, norm="batchnorm")


def test_the_official_protocol_tests_the_untrained_model_then_every_epoch():
    from condense.evaluate import evaluate
    from condense.methods import create_condenser

    train, test = load_dataset("MUTAG@mirage", "train"), load_dataset("MUTAG@mirage", "test")
    s = create_condenser("mirage", supports=(9, 32)).condense(train, 1, seed=0)
    res = evaluate(s, test, arch="gcn-mirage", protocol=get_protocol("mirage-official", epochs=3, checkpoints=3),
                   seeds=[1])
    run = res.runs[0]
    assert [c["step"] for c in run.curve] == [0, 1, 2, 3]     # 196 tree-sets: one batch of 500 per epoch
    assert run.extra["selected_on"] == "val_auc" and run.extra["frequency_mode"] == "once"
