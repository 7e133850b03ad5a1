"""The shared evaluator: train fixed architectures on a synthetic set, report accuracy and TTA.

For each explicit seed a fresh model is trained on the set alone (a subset-schedule trains on its
resolved source, round by round). Test accuracy is recorded at checkpoints every
``1/protocol.checkpoints`` of the steps, together with the training seconds up to that point;
evaluation time is excluded. The reported accuracy of an image run is the accuracy after the last
step -- never a checkpoint picked on the test set. Graph runs select the checkpoint on ``val``.

Time-to-accuracy (docs/design.md §4): ``TTA(target) = condense_seconds + train seconds until the first
checkpoint whose test accuracy >= target``; ``None`` ("not reached") when no checkpoint reaches it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .configs import dataset_config
from .curves import CurvePolicy
from .data import load_dataset
from .devices import device_kind, resolve_device  # noqa: F401  (part of the evaluator's API)
from .engine import TrainingDiverged, checkpoint_steps, tf32_mode  # noqa: F401  (part of the evaluator's API)
from .format import FormatError, SyntheticSet, load
from .format.summaries import check_source_budget
from .memory import PeakMemory
from .image_train import (ImageTask, image_task, fkd_loss, kd_loss, make_augment, mixup, together_reason,  # noqa: F401
                          train_images, train_images_together)
from .models import create_model, model_kind
from .protocols import Protocol, get_protocol
from .results import EvalResult, SeedRun
from .tta import condense_offset, counts_for_crossing, time_to_accuracy  # noqa: F401  (the evaluator's API)

__all__ = ["EvalResult", "ImageTask", "SeedRun", "TrainingDiverged", "check_applies", "checkpoint_steps", "condense_offset",
           "counts_for_crossing", "device_kind", "evaluate", "fkd_loss", "image_task", "kd_loss", "make_augment", "mixup",
           "resolve_device", "time_to_accuracy", "train_images", "train_images_together", "val_accuracy"]

# ----------------------------------------------------------------------------- entry point


def _as_synset(synset) -> SyntheticSet:
    if isinstance(synset, (str, Path)):
        return load(synset)
    if not isinstance(synset, SyntheticSet):
        raise TypeError(f"expected a SyntheticSet or a path, got {type(synset).__name__}")
    return synset


def evaluate(synset, test, arch: str = "convnet", protocol: str | Protocol = "dc",
             seeds: Sequence[int] = (0, 1, 2), device: str | torch.device = "cpu", *,
             preset: str = "quick", targets: Sequence[float] | None = None, source=None, val=None,
             arch_kwargs: dict | None = None, progress: bool = False,
             stop_at_targets: bool = False, root=None, budget_ipc: int | None = None,
             curve: str | CurvePolicy = "screened", compile: bool | str = False, together: int = 1,
             accept_other_source: bool = False) -> EvalResult:
    """Train ``arch`` on ``synset`` once per seed and test on ``test``.

    ``synset`` is a :class:`SyntheticSet` or a path to one. ``source`` is the training split a
    subset-schedule indexes (loaded from the file's reference when omitted); ``val`` is used by
    protocols that select a checkpoint (graphs), never ``test``; both are loaded from ``root`` (else
    ``$CONDENSE_DATA``) when omitted. ``stop_at_targets`` ends an image
    run once the highest target is reached: its accuracy is then not a final accuracy, and the run
    says so (``stopped_early``); use it only for reference runs that establish time-to-accuracy.

    ``budget_ipc`` fixes the step budget (docs/design.md §3): every set trains what the protocol gives on
    ``budget_ipc × C`` plain items. It defaults to the set's own IPC; the whole split (``full``, IPC
    0) trains its own passes unless a budget IPC is given.

    ``curve``: how image checkpoints are evaluated (:mod:`condense.curves`): ``screened`` (default;
    the same time-to-accuracy for a fraction of the cost) or ``full`` (every checkpoint on the whole
    test set). Each run records the method in its ``extra``. ``compile`` compiles image students'
    training forward pass with ``torch.compile`` (it pays on long runs; compilation time counts as
    training time; where it is unavailable the run trains eagerly and says so in ``extra``);
    ``"auto"`` compiles where it pays (:func:`condense.engine.compile_pays`).

    ``together``: train up to this many seeds at once as one stacked network (ConvNet students, the
    cross-entropy loss; :func:`train_images_together`). Each seed gets what it gets alone (its
    initial weights, batch order, augmentation draws and loss), so the accuracies follow the same
    distribution; training seconds are the stack's per model, and each run records ``together``.
    Runs that cannot stack train one at a time and say why (``together_fallback``).

    A ``source`` given is checked first (:func:`check_source`): a set made from another copy of its
    data is refused unless ``accept_other_source``, and then every run records both fingerprints.
    """
    s = _as_synset(synset)
    policy = curve if isinstance(curve, CurvePolicy) else CurvePolicy(method=curve)
    if compile not in (True, False, "auto"):
        raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
    if not isinstance(together, int) or isinstance(together, bool) or not 1 <= together <= 10_000:
        raise ValueError(f"together must be an integer in [1, 10000], got {together!r}")
    if not seeds or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2 ** 63 for x in seeds):
        raise ValueError(f"evaluate needs explicit training seeds, integers in [0, 2^63), got {list(seeds)!r}")
    p = get_protocol(protocol, preset)
    kind = "graphs" if s.kind == "graphs" else "images"
    check_applies(s, test, p, arch)
    other = check_source(s, source, accept_other_source) if source is not None else None
    device = resolve_device(device)
    cfg = dataset_config(s.source_dataset, kind)
    targets = tuple(targets) if targets is not None else cfg.targets
    kw = {**dict(p.arch_kwargs), **(arch_kwargs or {})}
    if arch not in ("convnet", "convnet_bn") and kind == "images":
        kw = dict(arch_kwargs or {})  # DC's ConvNet settings do not apply to other families
    ipc = budget_ipc if budget_ipc is not None else s.ipc
    if not isinstance(ipc, int) or ipc < 0:
        raise ValueError(f"budget_ipc must be an integer >= 0, got {ipc!r}")
    reference = ipc * s.num_classes if ipc else None
    trained = p.resolved(s)  # lr="from-set": the set's learned learning rate; the record keeps "from-set"
    with tf32_mode(p.precision, device) as tf32:
        runs = _train_runs(s, test, arch, kw, trained, kind, list(seeds), device, val, root, source, progress,
                           stop_at_targets, reference, targets, policy, compile, together)
    for run in runs:
        run.extra["tf32"] = tf32  # whether TF32 was allowed (never on a CPU; on a GPU only under precision=tf32)
        if trained is not p:
            run.extra["synthetic_lr"] = trained.lr
        if other:
            run.extra["accepted_other_source"] = other
    return _result(arch, p, kw, runs, targets, s, device)


def _train_runs(s, test, arch, kw, p, kind, seeds, device, val, root, source, progress, stop_at_targets,
                reference, targets, policy, compile, together) -> list[SeedRun]:
    """Every seed's run of :func:`evaluate`: graphs one at a time; images alone or stacked."""
    runs = []
    if kind == "graphs":
        if val is None:
            val = load_dataset(s.source_dataset, "val", root=root)
        if getattr(val, "split", "val") != "val" or getattr(val, "name", s.source_dataset) != s.source_dataset:
            raise ValueError(f"checkpoints are selected on the 'val' split of {s.source_dataset}, got "
                             f"{getattr(val, 'name', '?')}/{getattr(val, 'split', '?')} (never the test split)")
        from .graph_eval import train_graphs   # torch_geometric: loaded by graph sets only

        for seed in seeds:
            torch.manual_seed(seed)
            with PeakMemory(device) as memory:
                edge_dim = (test.num_edge_features or None) if "edge_attr" in s.graphs else None  # none stored: none used
                model = create_model(arch, test.num_node_features, s.num_classes, edge_dim=edge_dim, **kw).to(device)
                runs.append(SeedRun(**train_graphs(model, s, p, seed, device, test, val, progress=progress,
                                                   reference_size=reference)))
            runs[-1].extra["train_memory"] = memory.record()
    else:
        task, test_xy = image_task(s, test, device, source, p, root)
        if together > 1 and not stop_at_targets:
            with PeakMemory(device) as memory:   # one stack: every run of it shares the figure
                runs = _together(arch, kw, s, test, task, test_xy, p, seeds, device, progress, reference, targets,
                                 policy, compile, together)
            for run in runs:
                run.extra["train_memory"] = memory.record()
            return runs
        for seed in seeds:
            torch.manual_seed(seed)
            with PeakMemory(device) as memory:
                model = create_model(arch, tuple(test.shape), s.num_classes, **kw).to(device)
                runs.append(train_images(model, task, p, seed, device, test_xy, s.source_dataset, progress,
                                         stop_at=max(targets) if stop_at_targets and targets else None,
                                         reference_size=reference, targets=targets, curve_policy=policy,
                                         compile=compile))
            runs[-1].extra["train_memory"] = memory.record()
    return runs


def val_accuracy(synset: SyntheticSet, val, protocol: Protocol, arch: str = "convnet", seed: int = 0,
                 device: str | torch.device = "cpu", progress: bool = False) -> float:
    """The ``val`` accuracy (%) of one student trained on ``synset`` by ``protocol``, tested once at the
    end: for choices a method makes from its own data (CV-DD's student priors), never the test split."""
    if getattr(val, "split", None) != "val" or getattr(val, "name", None) != synset.source_dataset:
        raise ValueError(f"val_accuracy needs the 'val' split of {synset.source_dataset}, got "
                         f"{getattr(val, 'name', '?')}/{getattr(val, 'split', '?')}")
    device = resolve_device(device)
    p = protocol.replace(checkpoints=1)
    task, val_xy = image_task(synset, val, device, None, p)
    kw = dict(p.arch_kwargs) if arch in ("convnet", "convnet_bn") else {}
    torch.manual_seed(seed)
    model = create_model(arch, tuple(val.shape), synset.num_classes, **kw).to(device)
    run = train_images(model, task, p, seed, device, val_xy, synset.source_dataset, progress,
                       reference_size=synset.ipc * synset.num_classes, curve_policy=CurvePolicy(method="full"))
    return float(run.final_acc)


def _together(arch, kw, s, test, task, test_xy, p, seeds, device, progress, reference, targets, policy, compile,
              together) -> list[SeedRun]:
    """Seeds in groups of ``together``, each group stacked when it can be (else one at a time)."""
    def build(seed):
        torch.manual_seed(seed)
        return create_model(arch, tuple(test.shape), s.num_classes, **kw).to(device)

    why = together_reason([build(seeds[0])], task, p)  # the architecture and the loss decide it for every group
    runs = []
    for i in range(0, len(seeds), together):
        group = seeds[i:i + together]
        if why is None and len(group) > 1:
            runs += train_images_together([build(seed) for seed in group], task, p, group, device, test_xy,
                                          s.source_dataset, progress, reference_size=reference, targets=targets,
                                          curve_policy=policy, compile=compile)
            continue
        for seed in group:  # exactly as alone: the seed set again right before its model
            run = train_images(build(seed), task, p, seed, device, test_xy, s.source_dataset, progress,
                               reference_size=reference, targets=targets, curve_policy=policy, compile=compile)
            if len(group) > 1:
                run.extra["together_fallback"] = why
            runs.append(run)
    return runs


def _result(arch, p: Protocol, kw, runs, targets, s: SyntheticSet, device) -> EvalResult:
    pd = p.to_dict()
    pd["arch_kwargs"] = kw
    return EvalResult(arch=arch, protocol=pd, runs=runs, targets=targets,
                      condense_seconds=s.condense_seconds, teacher_seconds=s.teacher_seconds,
                      storage_bytes=s.storage_bytes, device=str(device),
                      condense_cpu_seconds=s.extra.get("condense_cpu_seconds"),
                      teacher_cpu_seconds=s.extra.get("teacher_cpu_seconds", 0.0 if not s.teacher_seconds else None),
                      plan=runs[0].extra.get("plan", {}))


def check_source(s: SyntheticSet, source, accept_other: bool = False) -> dict | None:
    """Check ``s`` against the local training split ``source`` it claims to come from: the same
    fingerprint (else a one-line refusal naming both, or, with ``accept_other``, the two returned for
    the record), and what a summary's byte budget claims of it (:func:`check_source_budget`)."""
    local = getattr(source, "fingerprint", None)
    other = None
    if s.source_fingerprint and local != s.source_fingerprint:
        other = {"set": s.source_fingerprint, "local": local}
        if not accept_other:
            raise FormatError(f"{s.path or 'the ' + repr(s.method) + ' set'}: made from {s.source_dataset}/train with "
                             f"fingerprint {s.source_fingerprint}, but the local {s.source_dataset}/train has "
                             f"{local}; accept_other_source (--accept-other-source) evaluates it anyway and "
                             "records that it did")
    check_source_budget(s, source)
    return other


def check_applies(s: SyntheticSet, test, p: Protocol, arch: str) -> None:
    """Refuse, in one line and before any training, a pairing that would train the wrong model or
    test on the wrong data: ``test`` must be the test split of the set's source dataset, with its
    classes and input shape; the protocol and the architecture must be for the set's kind."""
    kind = "graphs" if s.kind == "graphs" else "images"
    where = s.path or f"the {s.method!r} set"
    name, split = getattr(test, "name", None), getattr(test, "split", None)
    if name != s.source_dataset:
        raise ValueError(f"{where}: condensed from {s.source_dataset!r} but the test split given is of {name!r}")
    if split != "test":
        raise ValueError(f"{where}: evaluation needs the 'test' split of {name}, got its {split!r} split "
                         "(accuracy on training data is not a result)")
    classes = tuple(str(c) for c in getattr(test, "classes", ()))
    if classes != tuple(s.class_names):
        raise ValueError(f"{where}: the set has {s.num_classes} classes {list(s.class_names)[:4]}…, the test split "
                         f"{len(classes)} {list(classes)[:4]}…")
    if p.kind != kind:
        raise ValueError(f"{where}: protocol {p.name!r} trains on {p.kind}, and this set holds {kind}")
    if model_kind(arch) != kind:
        raise ValueError(f"{where}: architecture {arch!r} does not apply to a {s.kind} set")
    if kind == "images":
        shape = tuple(s.images.shape[1:]) if s.images is not None else None
        if shape is not None and shape != tuple(test.shape):
            raise ValueError(f"{where}: images are {'×'.join(map(str, shape))} but {name}'s test images are "
                             f"{'×'.join(map(str, test.shape))}")
    else:
        f_set, f_test = int(s.graphs["x"].shape[1]), int(test.num_node_features)
        if f_set != f_test:
            raise ValueError(f"{where}: graphs have {f_set} node features, {name}'s test graphs {f_test}")
        if "edge_attr" in s.graphs and int(s.graphs["edge_attr"].shape[1]) != int(test.num_edge_features):
            raise ValueError(f"{where}: graphs have {int(s.graphs['edge_attr'].shape[1])} edge features, "
                             f"{name}'s test graphs {int(test.num_edge_features)}")
