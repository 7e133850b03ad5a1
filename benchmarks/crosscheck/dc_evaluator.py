"""Adapter ``dc-evaluator``: the official ``evaluate_synset`` of DC/DSA/DM (VICO-UoE/DatasetCondensation,
``utils.py``, with its ``ConvNet`` of ``networks.py``) against the suite's ``dc`` protocol, on the same
synthetic set, test split and seeds, without augmentation on either side (the ``quick`` preset).

Probes: when the optimizer is (re)created and with what rate, momentum and weight decay, in steps
(exact); the optimizer steps in all (exact); the test accuracy of every seed (statistical: the two
sides draw their initial weights and batch orders from different generators).
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from .harness import Probe, Substitution, patched_copy

OFFICIAL = "VICO-UoE/DatasetCondensation"
SUBSTITUTIONS = (
    Substitution("scipy-rotate", "utils.py", "from scipy.ndimage.interpolation import rotate as scipyrotate",
                 "from scipy.ndimage import rotate as scipyrotate",
                 "scipy 1.14 removed the scipy.ndimage.interpolation namespace; rotate lives in scipy.ndimage"),
    Substitution("seed-from-clock", "utils.py", "torch.random.manual_seed(int(time.time() * 1000) % 100000)",
                 "torch.random.manual_seed(int(os.environ.get('CROSSCHECK_SEED', '0')))",
                 "get_network seeds its weights from the clock; the crosscheck gives every network its seed"),
)


def load_official(copy: Path):
    """The official ``utils`` and ``networks`` modules of the patched copy, imported under their names."""
    sys.path.insert(0, str(copy))
    try:
        for name in ("utils", "networks"):
            sys.modules.pop(name, None)
        return importlib.import_module("utils")
    finally:
        sys.path.remove(str(copy))


class _Recorder:
    """Every SGD the official loop creates (at which step, with the rate of its first step, momentum and weight
    decay) and the steps taken."""

    def __init__(self):
        self.created: list[tuple] = []
        self.steps = 0

    def __enter__(self):
        rec, real = self, torch.optim.SGD

        class SGD(real):
            def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, **kw):
                self._created = (rec.steps, momentum, weight_decay)
                super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **kw)

            def step(self, *a, **kw):   # the rate an optimizer first steps with (a schedule may set it after creation)
                if self._created is not None:
                    at, momentum, decay = self._created
                    rec.created.append((at, round(float(self.param_groups[0]["lr"]), 10), momentum, decay))
                    self._created = None
                rec.steps += 1
                return super().step(*a, **kw)

        self._real, torch.optim.SGD = real, SGD
        return self

    def __exit__(self, *exc):
        torch.optim.SGD = self._real


def official_runs(utils, s, test, epochs: int, seeds, batch: int = 256) -> tuple[list[float], _Recorder]:
    """The official ``evaluate_synset`` once per seed: test accuracies (%) and the first run's schedule."""
    import os

    x, y = s.float_images(), s.labels.long()
    tx, ty = test.tensors()
    loader = torch.utils.data.DataLoader(utils.TensorDataset(tx, ty), batch_size=256, shuffle=False)
    args = SimpleNamespace(lr_net=0.01, epoch_eval_train=epochs, batch_train=batch, device="cpu", dsa=False,
                           dc_aug_param={"strategy": "none"})
    accs, first = [], None
    for seed in seeds:
        os.environ["CROSSCHECK_SEED"] = str(seed)
        net = utils.get_network("ConvNet", x.shape[1], s.num_classes, tuple(x.shape[2:]))
        torch.manual_seed(seed)   # the batch order
        with _Recorder() as rec:
            _, _, acc = utils.evaluate_synset(0, net, x, y, loader, args)
        accs.append(100.0 * float(acc))
        first = first or rec
    return accs, first


def our_runs(s, test, epochs: int, seeds) -> tuple[list[float], list[tuple], int]:
    from condense.budget import plan_steps
    from condense.evaluate import evaluate
    from condense.protocols import get_protocol

    p = get_protocol("dc", "quick", epochs=epochs, checkpoints=1)
    res = evaluate(s, test, arch="convnet", protocol=p, seeds=list(seeds))
    plan = plan_steps(p.budget, p.passes, p.batch_size, len(s), s.ipc * s.num_classes)
    per_pass = plan.steps_per_pass
    created = [(0, p.lr, p.momentum, p.weight_decay)]
    created += [(e * per_pass, round(p.lr_at(e), 10), p.momentum, p.weight_decay)
                for e in range(p.passes) if p.resets_optimizer(e)]
    return [r.final_acc for r in res.runs], created, plan.total_steps


def run(official_dir: Path, options) -> tuple[list[Probe], dict]:
    """Both sides on one set (``options.set``: a .h5; default digits ``random`` IPC 10, set seed 0)."""
    import condense
    from condense.data import load_dataset
    from condense.methods import create_condenser

    if options.set:
        s = condense.load(options.set)
    else:
        s = create_condenser("random").condense(load_dataset("digits", "train"), 10, seed=0)
    if s.kind != "images" or s.soft_labels is not None:
        raise ValueError(f"the dc evaluator takes hard-label image sets; {options.set} is a {s.kind} set")
    test = load_dataset(s.source_dataset, "test")
    seeds = options.seeds
    epochs = options.epochs or 300
    with patched_copy(official_dir, SUBSTITUTIONS, say=options.say) as copy:
        utils = load_official(copy)
        official, rec = official_runs(utils, s, test, epochs, seeds)
    ours, created, steps = our_runs(s, test, epochs, seeds)
    probes = [Probe("optimizer (step created, lr, momentum, weight decay)", rec.created, created),
              Probe("optimizer steps", rec.steps, steps),
              Probe("test accuracy % per seed", official, ours, kind="stat", tolerance=1.0)]
    inputs = {"set": str(options.set or f"digits random IPC 10 set seed 0 ({len(s)} images)"),
              "test": f"{test.name}/test ({len(test)} images)", "epochs": epochs, "seeds": list(seeds)}
    return probes, inputs
