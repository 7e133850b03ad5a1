"""Why Mirage ranks MUTAG's test graphs below chance: a probe of the summary and the trained GNNs.

    python -m benchmarks.probe_mirage [--dataset MUTAG] [--ipc 10] [--seeds 0 1 2 3 4]

It prints, for the Mirage summary under the graph protocol:

1. per class, the tree-sets kept, their trees (roots) per set and their frequency, and for each tree
   the share of training graphs of each class that contain it;
2. per split, each class's mean graph size and the ROC-AUC of the node count alone as a score;
3. per GNN and seed, after the protocol's training on the summary: the test ROC-AUC, and the rank
   correlation between the model's class-1 score and the graph's node count; then the same with the
   readout's root sum replaced by a root mean (an ablation that removes the size signal, not the
   protocol).

With sum pooling a real graph is pooled over all its nodes while a tree-set is pooled over its 2–5
roots; when the class with the *smaller* real graphs has the *larger* tree-sets, a model trained on the
summary maps more pooled mass to that class and ranks test graphs by size, the wrong way round.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from torch_geometric.data import Batch

from condense.data import load_dataset
from condense.graph_eval import roc_auc, train_graphs
from condense.methods import create_condenser
from condense.methods.mirage import graph_union, computation_tree_codes, transactions
from condense.models import create_model
from condense.protocols import get_protocol


def rank_corr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation (average ranks over ties)."""
    def ranks(v):
        v = v.double()
        order = torch.argsort(v)
        r = torch.empty_like(v)
        r[order] = torch.arange(len(v), dtype=torch.float64)
        for u in torch.unique(v):
            m = v == u
            r[m] = r[m].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / den if den else 0.0


def split_sizes(ds) -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.tensor([ds[i].num_nodes for i in range(len(ds))], dtype=torch.float64)
    y = torch.tensor([int(ds[i].y) for i in range(len(ds))])
    return n, y


def tree_shares(s, train) -> list[str]:
    """For every tree of the summary, by the class of the tree-sets it appears in: the fraction of
    training graphs of each class whose transaction holds it (the mining's own view, Algorithm 1)."""
    hops = s.extra["hops"]
    split = graph_union(train, 3)
    codes, table = computation_tree_codes(split.node_labels, split.edge_index, split.edge_labels, hops)
    nontrivial = np.bincount(split.edge_index[1], minlength=split.x.shape[0]) > 0
    tx = [{table.string(hops, c) for c in t.tolist()}
          for t in transactions(codes[hops], split.graph_of_node, nontrivial, len(split.y))]
    g, out, seen = s.graphs, [], set()
    classes = sorted(set(split.y.tolist()))
    for i, c in enumerate(g["labels"].tolist()):
        for code in g["tree_codes"][int(g["tree_ptr"][i]):int(g["tree_ptr"][i + 1])]:
            if (c, code) in seen:
                continue
            seen.add((c, code))
            shares = "  ".join(f"class {k}: {np.mean([code in tx[j] for j in np.flatnonzero(split.y == k)]):.2f}"
                               for k in classes)
            out.append(f"in class-{c} tree-sets: {code:48s} {shares}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.probe_mirage", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="MUTAG")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--archs", nargs="+", default=["gcn", "gin"])
    args = ap.parse_args(argv)

    splits = {k: load_dataset(args.dataset, k) for k in ("train", "val", "test")}
    p = get_protocol("graph")
    s = create_condenser("mirage").for_protocol(p).condense(splits["train"], args.ipc, seed=0)
    print(f"# {args.dataset}, Mirage at IPC {args.ipc} ({s.storage_bytes['total']} bytes), protocol "
          f"{p.label()}, {dict(p.arch_kwargs)}")
    print("\n## 1. The summary")
    ds = s.dataset()
    for c in range(s.num_classes):
        mine = [d for d in ds if int(d.y) == c]
        if mine:
            roots = torch.tensor([float(d.root_mask.sum()) for d in mine])
            freq = torch.tensor([float(d.frequency) for d in mine])
            print(f"class {c}: {len(mine)} tree-sets, roots per set {roots.mean():.2f} (min {roots.min():.0f}, "
                  f"max {roots.max():.0f}), frequency {freq.mean():.1f}")
    print("\n## 1b. Each distinct tree of the summary: the share of training graphs of each class containing it")
    for line in tree_shares(s, splits["train"]):
        print(line)
    print("\n## 2. Graph size and class")
    for k, d in splits.items():
        n, y = split_sizes(d)
        per = ", ".join(f"class {c}: {int((y == c).sum())} graphs of {n[y == c].mean():.1f} nodes"
                        for c in range(s.num_classes))
        auc = roc_auc(n, y)
        print(f"{k}: {per}; ROC-AUC of the node count alone {100 * auc:.1f}" if auc is not None else f"{k}: {per}")
    test = splits["test"]
    tb = Batch.from_data_list([test[i] for i in range(len(test))])
    n_test, y_test = split_sizes(test)
    print("\n## 3. GNNs trained on the summary (final weights; test ROC-AUC, and the rank correlation of the "
          "class-1 score with node count)")
    for pooling in ("sum", "mean"):
        q = p.replace(arch_kwargs=tuple((k, pooling if k == "pooling" else v) for k, v in p.arch_kwargs))
        for arch in args.archs:
            aucs, cors = [], []
            for seed in args.seeds:
                torch.manual_seed(seed)
                model = create_model(arch, test.num_node_features, s.num_classes,
                                     edge_dim=test.num_edge_features or None, **dict(q.arch_kwargs))
                train_graphs(model, s, q, seed, torch.device("cpu"), test, splits["val"],
                             reference_size=args.ipc * s.num_classes)
                model.eval()
                with torch.no_grad():
                    logits = model(tb)
                score = (logits[:, 1] - logits[:, 0]).double()
                aucs.append(100 * roc_auc(score, y_test))
                cors.append(rank_corr(score, n_test))
            label = "root sum (protocol)" if pooling == "sum" else "root mean (ablation)"
            print(f"{arch:4s} {label:22s} test ROC-AUC " + " ".join(f"{a:5.1f}" for a in aucs) +
                  f"  mean {sum(aucs) / len(aucs):5.1f};  rank corr(score, nodes) " +
                  " ".join(f"{c:+.2f}" for c in cors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
