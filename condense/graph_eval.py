"""Graph-classification training for the shared evaluator.

A GNN is trained on the set's graphs; when they carry a ``root_mask`` (Mirage's computation-tree
summaries) the readout pools over root nodes only, while real validation and test graphs are pooled
over all nodes, as in the Mirage paper. Test accuracy (and ROC-AUC for two classes) is recorded at
every checkpoint; the reported scores are those at the checkpoint with the best *validation* score
(the protocol's ``select``: accuracy, or ROC-AUC on two-class tasks; ties go to the later
checkpoint). The test set never selects anything.

Graphs that carry a ``frequency`` (Mirage's tree-sets) are used by the protocol's ``frequency_mode``:
``proportional`` (the paper) draws, every epoch, as many graphs as the set holds, i.i.d. with
probability proportional to frequency, from the seeded generator; ``once`` (what the official code
runs) takes every graph once per epoch in a seeded shuffle. Sets without frequencies always run
``once``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_geometric.data import Batch

from .budget import BatchStream, WeightedStream, plan_steps, schedule_batches
from .engine import Clock, Schedule, checkpoint_steps, fit
from .graph_batch import CollatedGraphs
from .protocols import FREQUENCY_MODES, Protocol


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Binary ROC-AUC (scikit-learn's ``roc_auc_score``, ties averaged); None when one class is absent."""
    y = labels.detach().cpu().numpy()
    if not ((y == 1).any() and (y == 0).any()):
        return None
    # On use: sklearn.metrics (with scipy.stats) takes 0.5 s to import; only two-class graph runs need it.
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores.detach().cpu().double().numpy()))


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
    return Batch.from_data_list([dataset[i] for i in range(len(dataset))]).to(device)


def selection_key(curve: list[dict], p: Protocol) -> str:
    """The curve field a checkpoint is chosen by: ``val_auc`` under ``select="val-auc"`` when every
    checkpoint has one (two classes, both in the validation split), else ``val_acc``."""
    if getattr(p, "select", "val-acc") == "val-auc" and curve and all(c["val_auc"] is not None for c in curve):
        return "val_auc"
    return "val_acc"


def frequency_mode(s, p: Protocol) -> str:
    """The mode a set trains by: the protocol's for sets with frequencies, else ``once``."""
    mode = getattr(p, "frequency_mode", None) or "proportional"
    if mode not in FREQUENCY_MODES:
        raise ValueError(f"unknown frequency_mode {mode!r}; expected one of {', '.join(FREQUENCY_MODES)}")
    return mode if "frequency" in s.graphs else "once"


def _stream(graphs, s, p: Protocol, g: torch.Generator):
    """Where batches come from: frequency-proportional i.i.d. draws (the paper's sampling of
    tree-sets), or successive seeded shuffles (every graph once per pass)."""
    if frequency_mode(s, p) == "proportional":
        return WeightedStream(torch.cat([d.frequency.view(-1) for d in graphs]).float(), g)
    return BatchStream(len(graphs), g)


def train_graphs(model, s, p: Protocol, seed: int, device, test, val, progress: bool = False,
                 reference_size: int | None = None) -> dict:
    """Train a GNN for the steps of the protocol's budget (:mod:`condense.budget`; the reference is
    ``reference_size`` plain graphs) on the engine (:mod:`condense.engine`); the checkpoint is
    selected on ``val``, never on ``test``. Returns the fields of a seed run (collating a batch is
    part of a step, so it is on the training clock)."""
    graphs = s.dataset()
    use_roots = "root_mask" in s.graphs
    g = torch.Generator().manual_seed(seed)
    stream = _stream(graphs, s, p, g)
    plan = plan_steps(p.budget, p.passes, p.batch_size, len(graphs), reference_size)
    test_b, val_b = _full_batch(test, device), _full_batch(val, device)
    bank = CollatedGraphs(graphs, device)
    clock, eval_clock = Clock(device), Clock(device)
    curve: list[dict] = []

    def loss_fn(idx):
        batch = bank.gather(idx)
        mask = batch.root_mask if use_roots else None
        return F.cross_entropy(model(batch, pool_mask=mask), batch.y.view(-1))

    def checkpoint(step: int, epoch: int) -> None:
        with eval_clock:
            te, va = graph_scores(model, test_b), graph_scores(model, val_b)
        curve.append({"step": step, "epoch": epoch, "train_seconds": clock.total, "cpu_seconds": clock.cpu,
                      "acc": te["acc"], "auc": te["auc"], "val_acc": va["acc"], "val_auc": va["auc"], "on": "full"})

    if getattr(p, "check_initial", False):
        checkpoint(0, 0)   # the untrained model: the official Mirage scripts test before every epoch, epoch 0 too
    steps = fit(model, schedule_batches(plan, lambda epoch: stream), loss_fn,
                Schedule.from_protocol(p, plan.passes, plan.steps_per_pass), clock=clock,
                checkpoints=checkpoint_steps(plan.total_steps, p.checkpoints), on_checkpoint=checkpoint,
                progress=progress, desc=f"train seed {seed}", where=f"seed {seed}", precision=p.precision)
    by = selection_key(curve, p)
    best = max(range(len(curve)), key=lambda i: (curve[i][by], i))
    chosen = curve[best]
    return dict(seed=seed, final_acc=chosen["acc"], curve=curve, train_seconds=clock.total,
                eval_seconds=eval_clock.total, eval_cpu_seconds=eval_clock.cpu, steps=steps,
                cpu_seconds=clock.cpu,
                extra={"selected_step": chosen["step"], "roc_auc": chosen["auc"],
                       "val_acc": chosen["val_acc"], "val_auc": chosen["val_auc"], "selected_on": by,
                       "last_acc": curve[-1]["acc"],
                       "pooling": "roots" if use_roots else "all nodes",
                       "frequency_mode": frequency_mode(s, p), "plan": plan.to_dict(p.checkpoints),
                       "curve": {"method": "full", "full_points": len(curve), "test_size": len(test)}})
