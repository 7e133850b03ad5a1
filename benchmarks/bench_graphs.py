"""Graph students in the evaluator bench: the suite's graph training against a plain PyG loop, in one process.

A case is ``DATASET:IPC`` of a graph dataset (``NCI1:50``): a random set of IPC real training graphs per
class, trained by GCN and by GIN under the ``graph`` protocol (quick: 100 epochs, batch 32, Adam lr 1e-3,
hidden 128, two layers, sum pooling, no normalisation, dropout 0.5), with validation and test scores at
the protocol's checkpoints and the checkpoint kept by validation ROC-AUC (two classes) or accuracy.

The reference is the loop a PyG user writes for the same settings: ``torch_geometric.loader.DataLoader``
over the set (shuffled, batch 32), a model of ``GCNConv`` (its own normalisation, self-loops added) or
``GINConv`` layers with the same widths, dropout and sum readout, the same optimizer, and val and test
passes at the same checkpoints. Ratios are reference ÷ suite: ``total`` over wall seconds of the whole
run, ``per step`` over training seconds per optimizer step. ``python -m benchmarks.bench_evaluator
--cases NCI1:50`` prints these rows beside the image cases.
"""
from __future__ import annotations

import time
from statistics import median

import torch
import torch.nn as nn
import torch.nn.functional as F

from condense.data import load_dataset
from condense.evaluate import evaluate
from condense.methods import create_condenser
from condense.protocols import get_protocol

ARCHS = ("gcn", "gin")


class PlainGNN(nn.Module):
    """GCN or GIN as the PyG examples write them: convolutions with ReLU and dropout, a sum readout, a
    linear head."""

    def __init__(self, conv: str, in_dim: int, num_classes: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        from torch_geometric.nn import GCNConv, GINConv

        def make(d_in):
            if conv == "gcn":
                return GCNConv(d_in, hidden)
            return GINConv(nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden)), train_eps=True)

        self.convs = nn.ModuleList(make(in_dim if i == 0 else hidden) for i in range(layers))
        self.dropout = dropout
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, data):
        from torch_geometric.nn import global_add_pool

        h = data.x
        for conv in self.convs:
            h = F.dropout(torch.relu(conv(h, data.edge_index)), self.dropout, self.training)
        return self.head(global_add_pool(h, data.batch, size=data.num_graphs))


@torch.no_grad()
def _scores(model, loader) -> tuple[float, float | None]:
    from condense.graph_eval import roc_auc

    model.eval()
    logits, ys = [], []
    for b in loader:
        logits.append(model(b))
        ys.append(b.y.view(-1))
    model.train()
    logits, y = torch.cat(logits), torch.cat(ys)
    acc = 100.0 * float((logits.argmax(1) == y).float().mean())
    auc = roc_auc(torch.softmax(logits, 1)[:, 1].double(), y) if logits.shape[1] == 2 else None
    return acc, None if auc is None else 100.0 * auc


def reference_loop(graphs, val, test, arch: str, p, seed: int, checkpoints: int) -> dict:
    """The plain PyG loop: ``p.epochs`` shuffled passes, val and test scores at ``checkpoints`` evenly
    spaced epochs, the test score kept where validation was best (ROC-AUC on two classes)."""
    from torch_geometric.loader import DataLoader

    kw = dict(p.arch_kwargs)
    torch.manual_seed(seed)
    model = PlainGNN(arch, graphs[0].x.shape[1], int(max(int(d.y) for d in graphs)) + 1, kw["hidden"],
                     kw["num_layers"], kw["dropout"])
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    train = DataLoader(graphs, batch_size=p.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    val_l, test_l = DataLoader(val, batch_size=512), DataLoader(test, batch_size=512)
    marks = {round(p.epochs * (i + 1) / checkpoints) for i in range(checkpoints)}
    best, train_s, steps = None, 0.0, 0
    t_all = time.perf_counter()
    for epoch in range(1, p.epochs + 1):
        t = time.perf_counter()
        for b in train:
            opt.zero_grad()
            F.cross_entropy(model(b), b.y.view(-1)).backward()
            opt.step()
            steps += 1
        train_s += time.perf_counter() - t
        if epoch in marks:
            va, va_auc = _scores(model, val_l)
            te, te_auc = _scores(model, test_l)
            key = va_auc if va_auc is not None else va
            if best is None or key >= best[0]:
                best = (key, te, te_auc)
    return {"train_seconds": train_s, "total_seconds": time.perf_counter() - t_all, "steps": steps,
            "acc": best[1], "auc": best[2]}


def run_graph_case(dataset: str, ipc: int, epochs: int | None, seed: int = 0) -> list[dict]:
    """Both architectures on one random set of ``dataset`` at ``ipc``: a row per architecture."""
    train, val, test = (load_dataset(dataset, split) for split in ("train", "val", "test"))
    s = create_condenser("random").condense(train, ipc, seed=seed)
    p = get_protocol("graph", "quick", **({"epochs": epochs} if epochs else {}))
    rows = []
    for arch in ARCHS:   # one untimed epoch of each first: imports and first-call costs stay out of the figures
        reference_loop(s.dataset(), val, test, arch, p.replace(epochs=1), seed, 1)
        evaluate(s, test, arch=arch, protocol=p.replace(epochs=1, checkpoints=1), seeds=[seed], val=val)
    for arch in ARCHS:
        ref = reference_loop(s.dataset(), val, test, arch, p, seed, p.checkpoints)
        t = time.perf_counter()
        r = evaluate(s, test, arch=arch, protocol=p, seeds=[seed], val=val)
        total = time.perf_counter() - t
        run = r.runs[0]
        suite = {"train_seconds": run.train_seconds, "total_seconds": total, "steps": run.steps, "acc": run.final_acc,
                 "auc": run.extra.get("roc_auc")}
        rows.append({"case": f"{dataset}:{ipc}", "arch": arch, "epochs": p.epochs, "checkpoints": p.checkpoints,
                     "reference": ref, "suite": suite,
                     "ratio_total": ref["total_seconds"] / total,
                     "ratio_per_step": (ref["train_seconds"] / ref["steps"]) / (run.train_seconds / run.steps)})
    return rows


def print_rows(rows: list[dict]) -> None:
    for row in rows:
        ref, suite = row["reference"], row["suite"]
        auc = f"{suite['auc']:.1f}/{ref['auc']:.1f}" if suite["auc"] is not None and ref["auc"] is not None else "—"
        print(f"{row['case'] + ' ' + row['arch']:<16} {suite['steps']:>6} {ref['train_seconds']:>11.1f} "
              f"{ref['total_seconds']:>11.1f} {suite['train_seconds']:>13.1f} {suite['total_seconds']:>13.1f} "
              f"{row['ratio_total']:>8.2f} {row['ratio_per_step']:>10.2f}   acc suite/ref {suite['acc']:.2f}/{ref['acc']:.2f}"
              f", ROC-AUC {auc}", flush=True)


def print_medians(rows: list[dict]) -> None:
    """The median ratios over ``--repeat`` runs, one line per architecture."""
    for arch in ARCHS:
        mine = [r for r in rows if r["arch"] == arch]
        if mine:
            print(f"{'  median ' + arch:<16} {'':>6} {'':>11} {'':>11} {'':>13} {'':>13} "
                  f"{median(r['ratio_total'] for r in mine):>8.2f} {median(r['ratio_per_step'] for r in mine):>10.2f}",
                  flush=True)


HEADER = (f"{'graph case':<16} {'steps':>6} {'ref train s':>11} {'ref total s':>11} {'suite train s':>13} "
          f"{'suite total s':>13} {'total ×':>8} {'per step ×':>10}")
