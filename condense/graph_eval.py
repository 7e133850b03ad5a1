"""Graph-classification training for the shared evaluator.

A GNN is trained on the set's graphs; when they carry a ``root_mask`` (Mirage's computation-tree
summaries) the readout pools over root nodes only, while real validation and test graphs are pooled
over all nodes, as in the Mirage paper. Test accuracy (and ROC-AUC for two classes) is recorded at
every checkpoint; the reported accuracy is the test accuracy at the checkpoint with the best
*validation* accuracy (ties go to the later checkpoint). The test set never selects anything.

Graphs that carry a ``frequency`` (Mirage's tree-sets) are used by the protocol's ``frequency_mode``:
``proportional`` (the paper) draws, every epoch, as many graphs as the set holds, i.i.d. with
probability proportional to frequency, from the seeded generator; ``once`` (what the official code
runs) takes every graph once per epoch in a seeded shuffle. Sets without frequencies always run
``once``.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from .evaluate import SeedRun, _Clock, _set_lr, checkpoint_steps, make_optimizer, optimizer_step
from .protocols import FREQUENCY_MODES, Protocol


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Binary ROC-AUC by the rank statistic (ties averaged); None when one class is absent."""
    pos, neg = int((labels == 1).sum()), int((labels == 0).sum())
    if pos == 0 or neg == 0:
        return None
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores, dtype=torch.float64)
    sorted_scores = scores[order]
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    uniq, inv = torch.unique(sorted_scores, return_inverse=True)
    if len(uniq) < len(scores):  # average ranks over ties
        sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inv, ranks[order])
        counts = torch.bincount(inv, minlength=len(uniq)).double()
        ranks[order] = (sums / counts)[inv]
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


@torch.no_grad()
def graph_scores(model, batch) -> dict:
    was = model.training
    model.eval()
    logits = model(batch)
    model.train(was)
    y = batch.y.view(-1)
    out = {"acc": 100.0 * float((logits.argmax(1) == y).float().mean()), "auc": None}
    if logits.shape[1] == 2:
        auc = roc_auc(torch.softmax(logits, 1)[:, 1].double().cpu(), y.cpu())
        out["auc"] = None if auc is None else 100.0 * auc
    return out


def _full_batch(dataset, device):
    from torch_geometric.data import Batch

    return Batch.from_data_list([dataset[i] for i in range(len(dataset))]).to(device)


def frequency_mode(s, p: Protocol) -> str:
    """The mode a set trains by: the protocol's for sets with frequencies, else ``once``."""
    mode = getattr(p, "frequency_mode", None) or "proportional"
    if mode not in FREQUENCY_MODES:
        raise ValueError(f"unknown frequency_mode {mode!r}; expected one of {', '.join(FREQUENCY_MODES)}")
    return mode if "frequency" in s.graphs else "once"


class ProportionalBatches:
    """Each epoch: ``len(graphs)`` i.i.d. draws with probability proportional to ``weights``, in
    batches of ``batch_size`` (the paper's frequency-proportional sampling of tree-sets)."""

    def __init__(self, graphs, weights: torch.Tensor, batch_size: int, generator: torch.Generator):
        if not bool((weights >= 0).all()) or float(weights.sum()) <= 0:
            raise ValueError("frequency-proportional sampling needs non-negative frequencies with a positive sum")
        self.graphs, self.weights, self.batch_size, self.g = graphs, weights.double(), batch_size, generator

    def __len__(self) -> int:
        return math.ceil(len(self.graphs) / self.batch_size)

    def __iter__(self):
        from torch_geometric.data import Batch

        draws = torch.multinomial(self.weights, len(self.graphs), replacement=True, generator=self.g)
        for chunk in draws.split(self.batch_size):
            yield Batch.from_data_list([self.graphs[int(i)] for i in chunk])


def _loader(graphs, s, p: Protocol, g: torch.Generator):
    from torch_geometric.loader import DataLoader

    if frequency_mode(s, p) == "proportional":
        weights = torch.cat([d.frequency.view(-1) for d in graphs]).float()
        return ProportionalBatches(graphs, weights, p.batch_size, g)
    return DataLoader(graphs, batch_size=p.batch_size, shuffle=True, generator=g)


def train_graphs(model, s, p: Protocol, seed: int, device, test, val, progress: bool = False) -> SeedRun:
    from tqdm.auto import tqdm

    graphs = s.dataset()
    use_roots = "root_mask" in s.graphs
    g = torch.Generator().manual_seed(seed)
    loader = _loader(graphs, s, p, g)
    test_b, val_b = _full_batch(test, device), _full_batch(val, device)
    total = p.epochs * len(loader)
    marks = set(checkpoint_steps(total, p.checkpoints))
    opt = make_optimizer(model.parameters(), p)
    clock, eval_seconds, step = _Clock(device), 0.0, 0

    def checkpoint(epoch):
        t0 = time.perf_counter()
        te, va = graph_scores(model, test_b), graph_scores(model, val_b)
        point = {"step": step, "epoch": epoch, "train_seconds": clock.total, "cpu_seconds": clock.cpu,
                 "acc": te["acc"],
                 "auc": te["auc"], "val_acc": va["acc"], "val_auc": va["auc"]}
        return point, time.perf_counter() - t0

    curve: list[dict] = []
    model.train()
    bar = tqdm(total=total, desc=f"train seed {seed}", disable=not progress, leave=False, unit="step")
    for epoch in range(p.epochs):
        for batch in loader:
            batch = batch.to(device)
            with clock:
                _set_lr(opt, p.lr_at(epoch, step, total))
                mask = batch.root_mask if use_roots else None
                loss = F.cross_entropy(model(batch, pool_mask=mask), batch.y.view(-1))
                optimizer_step(opt, loss, f"step {step} (seed {seed})")
            step += 1
            bar.update(1)
            if step in marks:
                point, dt = checkpoint(epoch)
                curve.append(point)
                eval_seconds += dt
    bar.close()
    best = max(range(len(curve)), key=lambda i: (curve[i]["val_acc"], i))
    chosen = curve[best]
    return SeedRun(seed=seed, final_acc=chosen["acc"], curve=curve, train_seconds=clock.total,
                   eval_seconds=eval_seconds, steps=step, cpu_seconds=clock.cpu,
                   extra={"selected_step": chosen["step"], "roc_auc": chosen["auc"],
                          "val_acc": chosen["val_acc"], "last_acc": curve[-1]["acc"],
                          "pooling": "roots" if use_roots else "all nodes",
                          "frequency_mode": frequency_mode(s, p)})
