"""The shared evaluator: train fixed architectures on a synthetic set, report accuracy and TTA.

For each explicit seed a fresh model is trained on the set alone (a subset-schedule trains on its
resolved source, round by round). Test accuracy is recorded at checkpoints every
``1/protocol.checkpoints`` of the steps, together with the training seconds up to that point;
evaluation time is excluded. The reported accuracy of an image run is the accuracy after the last
step -- never a checkpoint picked on the test set. Graph runs select the checkpoint on ``val``.

Time-to-accuracy (DESIGN §4): ``TTA(target) = condense_seconds + train seconds until the first
checkpoint whose test accuracy >= target``; ``None`` ("not reached") when no checkpoint reaches it.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .budget import BatchStream, plan_steps, schedule_batches
from .configs import dataset_config
from .curves import CurvePolicy, Curve
from .devices import device_kind, resolve_device  # noqa: F401  (part of the evaluator's API)
from .engine import Clock, Forward, Schedule, TrainingDiverged, checkpoint_steps, compile_pays, fit, tf32_mode
from .models import create_model, model_kind
from .protocols import Protocol, get_protocol
from .format import SyntheticSet, load
from .tta import condense_offset, counts_for_crossing, time_to_accuracy  # noqa: F401  (the evaluator's API)


# ----------------------------------------------------------------------------- results


@dataclass
class SeedRun:
    seed: int
    final_acc: float
    curve: list[dict]
    train_seconds: float
    eval_seconds: float
    steps: int
    extra: dict = field(default_factory=dict)
    cpu_seconds: float = 0.0
    eval_cpu_seconds: float = 0.0


@dataclass
class EvalResult:
    arch: str
    protocol: dict
    runs: list[SeedRun]
    targets: tuple[float, ...]
    condense_seconds: float = 0.0
    teacher_seconds: float = 0.0
    storage_bytes: dict = field(default_factory=dict)
    device: str = "cpu"
    condense_cpu_seconds: float | None = None  # the condenser's process CPU time, when it recorded it
    teacher_cpu_seconds: float | None = None   # the teacher pool's CPU time, when every teacher recorded it
    plan: dict = field(default_factory=dict)   # the step budget every seed trained (condense.budget)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    @property
    def accs(self) -> list[float]:
        return [r.final_acc for r in self.runs]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accs)

    @property
    def std(self) -> float:
        """Population std over seeds (``np.std``, as DC and most papers report)."""
        return statistics.pstdev(self.accs) if len(self.accs) > 1 else 0.0

    def tta(self, target: float, include_condense: bool = True, clock: str = "train_seconds",
            include_teacher: bool = True) -> list[float | None]:
        """Seconds to ``target`` per seed (None: not reached). On ``clock="cpu_seconds"`` the condense
        part is CPU time too, and a set that did not record it gives None for every seed (unmeasured:
        no column mixes clocks). ``include_teacher=False`` leaves the teacher pool's cost out."""
        offset = 0.0
        if include_condense:
            cpu = clock == "cpu_seconds"
            offset = condense_offset(self.condense_cpu_seconds if cpu else self.condense_seconds,
                                     self.teacher_cpu_seconds if cpu else self.teacher_seconds, include_teacher)
            if offset is None:
                return [None for _ in self.runs]
        return [time_to_accuracy(r.curve, target, offset, clock) for r in self.runs]

    def tta_summary(self) -> dict[str, dict]:
        """Per target: seconds per seed, how many reached it, the mean when all did, and the same
        without teacher time and on the CPU clock."""
        out = {}
        for t in self.targets:
            per = self.tta(t)
            reached = [v for v in per if v is not None]
            out[f"{t:g}"] = {"per_seed": per, "reached": len(reached), "n": len(per),
                             "mean": statistics.fmean(reached) if reached and len(reached) == len(per) else None,
                             "train_only": self.tta(t, include_condense=False),
                             "no_teacher": self.tta(t, include_teacher=False),
                             "cpu": self.tta(t, clock="cpu_seconds"),
                             "cpu_no_teacher": self.tta(t, clock="cpu_seconds", include_teacher=False)}
        return out

    def summary(self) -> dict:
        return {"arch": self.arch, "protocol": self.protocol["name"], "preset": self.protocol["preset"],
                "seeds": self.seeds, "accs": self.accs, "mean": self.mean, "std": self.std,
                "n": len(self.runs), "tta": self.tta_summary(),
                "train_seconds": statistics.fmean(r.train_seconds for r in self.runs),
                "condense_seconds": self.condense_seconds, "teacher_seconds": self.teacher_seconds,
                "storage_bytes": self.storage_bytes}

    def to_dict(self) -> dict:
        return {**self.summary(), "protocol": self.protocol, "targets": list(self.targets),
                "device": self.device, "runs": [asdict(r) for r in self.runs]}

    def __str__(self) -> str:
        return f"{self.arch}/{self.protocol['name']}: {self.mean:.2f} ± {self.std:.2f} % over seeds {self.seeds}"


# ----------------------------------------------------------------------------- helpers


def make_augment(p: Protocol, dataset: str):
    if p.augment is None or p.augment == "fkd":  # fkd: the loss draws or replays its views (fkd_batch)
        return None
    from .augment import DSA, CropFlip

    if p.augment == "dsa":
        return DSA.for_dataset(dataset)
    if p.augment == "crop-flip":
        return CropFlip(flip=dataset not in ("digits", "mnist", "fashion-mnist", "svhn"))
    if p.augment == "rs2":  # RS2's own transforms: MNIST flip + crop (pad 4), Fashion-MNIST none
        if dataset == "fashion-mnist":
            return None
        if dataset == "mnist":
            return CropFlip(pad=4, flip=True)
        return CropFlip(flip=dataset not in ("digits", "svhn"))
    raise ValueError(f"unknown augmentation {p.augment!r}")


# ----------------------------------------------------------------------------- image training


@dataclass
class ImageTask:
    """What one image run trains on: a fixed set, or per-round index subsets of a source."""

    x: torch.Tensor                       # standardized float images on the device
    y: torch.Tensor                       # hard labels on the device
    soft: torch.Tensor | None = None      # static soft labels (kd)
    rounds: torch.Tensor | None = None    # rounds × n indices into x (subset-schedule)
    replay: dict | None = None            # per-epoch stored views (fkd; condense.replay)
    replay_logits: torch.Tensor | None = None   # E × N × C logits of those views, on the device
    replay_batch: int = 0
    num_classes: int = 0

    @property
    def set_size(self) -> int:
        """Items one pass of this set covers: its instances, or one schedule round."""
        return int(self.rounds.shape[1] if self.rounds is not None else self.x.shape[0])

    def stream_for(self, g: torch.Generator):
        """``epoch -> stream`` of index batches: one stream over the set's instances, or, for a
        schedule, a fresh shuffle of round ``epoch`` (RS2: each round is one pass)."""
        if self.replay is not None:  # the stored visiting order: positions of epoch e, in sequence
            n = self.set_size
            return lambda epoch: _ReplayStream(epoch, n, self.replay_logits.shape[0])
        if self.rounds is None:
            whole = BatchStream(self.set_size, g, self.x.device)
            return lambda epoch: whole

        def round_stream(epoch: int):
            if epoch >= self.rounds.shape[0]:
                raise ValueError(f"the schedule has {self.rounds.shape[0]} rounds but the protocol trains "
                                 f"{epoch + 1} or more epochs")
            return _RoundStream(self.rounds[epoch], g)
        return round_stream


class _RoundStream:
    def __init__(self, pool: torch.Tensor, g: torch.Generator):
        self.pool, self.inner = pool, BatchStream(pool.numel(), g)

    def take(self, k: int) -> torch.Tensor:
        return self.pool[self.inner.take(k).to(self.pool.device)]


class _ReplayStream:
    """Positions ``epoch·N + p`` in stored order; a pass never runs past its epoch's N views."""

    def __init__(self, epoch: int, n: int, epochs: int):
        if epoch >= epochs:
            raise ValueError(f"the set stores {epochs} replay epochs but training reached epoch {epoch + 1}")
        self.base, self.n, self.pos = epoch * n, n, 0

    def take(self, k: int) -> torch.Tensor:
        if self.pos + k > self.n:
            raise ValueError(f"a replay epoch holds {self.n} views; a pass asked for {self.pos + k}")
        out = torch.arange(self.base + self.pos, self.base + self.pos + k)
        self.pos += k
        return out


def fkd_batch(task: ImageTask, idx: torch.Tensor, p: Protocol, g: torch.Generator):
    """A batch of the ``fkd`` protocol: (views, target probabilities, ``soft``: whether they are soft labels
    tempered at T, trained by KL, rather than mixed one-hot ones).

    Replay sets: the stored views of these positions and their stored logits. Others: the same
    augmentations drawn now from ``g`` (a crop and a flip per image, one CutMix per batch), with the
    targets mixed by the area each image keeps: static soft labels as tempered probabilities, hard
    labels as one-hot ones (trained under cross-entropy)."""
    from . import replay

    if task.replay is not None:
        n = task.set_size
        e = int(idx[0]) // n
        pos = idx - e * n
        x = replay.views(task.x, task.replay, e, pos, task.replay_batch)
        return x, F.softmax(task.replay_logits[e, pos.to(task.x.device)].float() / p.temperature, dim=1), True
    idx = idx.to(task.x.device)
    k, (h, w) = idx.shape[0], task.x.shape[-2:]
    rec = {key: v[None] for key, v in replay.draw_epoch(k, h, w, k, g, shuffle=False).items()}
    x = replay.views(task.x[idx], rec, 0, torch.arange(k), k)
    partner = rec["mix_perm"][0].long().to(x.device)
    r1, c1, r2, c2 = rec["mix_box"][0, 0].tolist()
    keep = 1.0 - (r2 - r1) * (c2 - c1) / (h * w)
    if task.soft is not None:
        t = F.softmax(task.soft[idx].float() / p.temperature, dim=1)
        return x, keep * t + (1 - keep) * t[partner], True
    onehot = F.one_hot(task.y[idx], task.num_classes).float()
    return x, keep * onehot + (1 - keep) * onehot[partner], False


def fkd_loss(model, task: ImageTask, idx, p: Protocol, g: torch.Generator) -> torch.Tensor:
    """FKD's student loss (``train_fkd.py``): per chunk of ``batch / accumulate`` views,
    ``KL(target ‖ softmax(f(x)/T))`` averaged over the chunk (no T²), divided by ``accumulate``;
    hard-label sets: cross-entropy against their CutMix-mixed one-hot targets at T = 1."""
    x, target, soft = fkd_batch(task, idx, p, g)
    chunk = max(1, (p.batch_size or x.shape[0]) // p.accumulate)
    total = x.new_zeros(())
    for xc, tc in zip(x.split(chunk), target.split(chunk)):
        out = model(xc)
        if soft:
            total = total + F.kl_div(F.log_softmax(out / p.temperature, dim=1), tc, reduction="batchmean")
        else:
            total = total - (tc * F.log_softmax(out, dim=1)).sum(1).mean()
    return total / p.accumulate


def _loss(model, task: ImageTask, idx, p: Protocol, aug, g: torch.Generator) -> torch.Tensor:
    if p.augment == "fkd":
        return fkd_loss(model, task, idx, p, g)
    x, y = task.x[idx], task.y[idx]
    if aug is not None:
        x = aug(x)
    if p.loss == "ce":
        return F.cross_entropy(model(x), y)
    if p.loss == "kd":
        return kd_loss(model, x, task.soft[idx], p, g)
    raise ValueError(f"unknown protocol loss {p.loss!r}")


def mixup(x: torch.Tensor, soft: torch.Tensor, alpha: float, g: torch.Generator):
    """Mixup (Zhang et al., 2018) with λ ~ Beta(α, α); soft labels (logits) are interpolated with the
    same λ, as INFER interpolates its static labels."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * soft + (1 - lam) * soft[perm]


def kd_loss(model, x: torch.Tensor, soft: torch.Tensor, p: Protocol, g: torch.Generator) -> torch.Tensor:
    """``KL(softmax(s/T) ‖ softmax(f(x)/T))`` averaged over the batch, without a T² factor (INFER)."""
    if p.mixup_alpha > 0:
        x, soft = mixup(x, soft, p.mixup_alpha, g)
    log_p = F.log_softmax(model(x) / p.temperature, dim=1)
    return F.kl_div(log_p, F.softmax(soft / p.temperature, dim=1), reduction="batchmean")


def train_images(model, task: ImageTask, p: Protocol, seed: int, device: torch.device,
                 test: tuple[torch.Tensor, torch.Tensor], dataset: str, progress: bool = False,
                 stop_at: float | None = None, reference_size: int | None = None,
                 targets: Sequence[float] = (), curve_policy: CurvePolicy | None = None,
                 compile: bool | str = False) -> SeedRun:
    """Train ``model`` by protocol ``p`` for the steps of its budget (:mod:`condense.budget`) on the
    engine (:mod:`condense.engine`); test accuracy at checkpoints (:mod:`condense.curves`: screened
    for ``targets`` unless the policy says ``full``), training time only.

    ``reference_size`` is the plain set's ``ipc × C`` that fixes the step budget (None: the set's
    own size). ``stop_at``: stop at the first checkpoint whose full-test accuracy reaches it (a
    reference run that only has to establish time-to-accuracy); the run is then marked
    ``stopped_early``. ``compile``: the training forward pass through ``torch.compile`` (falling
    back to eager where it is unavailable; the run records which)."""
    g = torch.Generator().manual_seed(seed)
    aug = make_augment(p, dataset)
    plan = plan_steps(p.budget, p.passes, p.batch_size, task.set_size,
                      None if task.rounds is not None else reference_size)
    if task.replay is not None and plan.reference_size != task.set_size:
        raise ValueError(f"replay labels cover passes over the set's {task.set_size} images, but the step budget "
                         f"is passes over {plan.reference_size} items; evaluate it at its own IPC")
    net = Forward(model, compile_pays(plan.samples, task.x[0].numel(), device) if compile == "auto" else compile)
    total = plan.total_steps
    marks = checkpoint_steps(total, p.checkpoints)
    clock, eval_clock = Clock(device), Clock(device)
    goals = tuple(targets) + ((stop_at,) if stop_at is not None else ())
    curve = Curve(test, goals, curve_policy or CurvePolicy(), p.eval_batch_size, live=stop_at is not None,
                  progress=progress)
    extra = {"plan": plan.to_dict(p.checkpoints)}

    def checkpoint(step: int, epoch: int) -> bool:
        with eval_clock:
            point = curve.add(model, {"step": step, "epoch": epoch, "train_seconds": clock.total,
                                      "cpu_seconds": clock.cpu}, last=step == marks[-1])
        if stop_at is not None and point["on"] == "full" and point["acc"] >= stop_at and step < total:
            extra.update(stopped_early=True, planned_steps=total)
            return True
        return False

    steps = fit(model, schedule_batches(plan, task.stream_for(g)), lambda idx: _loss(net, task, idx, p, aug, g),
                Schedule.from_protocol(p, plan.passes, plan.steps_per_pass), clock=clock, checkpoints=marks,
                on_checkpoint=checkpoint, progress=progress, desc=f"train seed {seed}", where=f"seed {seed}",
                precision=p.precision)
    extra["curve"] = curve.describe()
    extra["compile"] = net.status
    points = curve.points
    return SeedRun(seed=seed, final_acc=points[-1]["acc"], curve=points, train_seconds=clock.total,
                   eval_seconds=eval_clock.total, steps=steps, cpu_seconds=clock.cpu, extra=extra,
                   eval_cpu_seconds=eval_clock.cpu)


def together_reason(models, task: ImageTask, p: Protocol) -> str | None:
    """Why these runs cannot train stacked (None: they can): :class:`StackedConvNet` holds the
    ConvNet family under the cross-entropy loss."""
    from .models.stacked import stackable

    if not all(stackable(m) for m in models):
        return "only ConvNet students train stacked"
    if p.loss != "ce":
        return f"loss {p.loss!r} trains one seed at a time"
    return None


def train_images_together(models: list, task: ImageTask, p: Protocol, seeds: Sequence[int], device: torch.device,
                          test: tuple[torch.Tensor, torch.Tensor], dataset: str, progress: bool = False,
                          reference_size: int | None = None, targets: Sequence[float] = (),
                          curve_policy: CurvePolicy | None = None, compile: bool | str = False) -> list[SeedRun]:
    """K seeds trained as one stacked network (:class:`condense.models.stacked.StackedConvNet`).

    Each seed keeps what it has alone: its own initial weights (``models``, built under its seed), its
    own batch order (a generator seeded with its seed), its own augmentation draws
    (``forward_groups``), and its own loss, summed over seeds so that each model's gradient is its
    own. Checkpoints copy each seed's weights back into its model and record its curve as a single
    run does. Training seconds are the stack's, divided by K (the cost per model), on both clocks."""
    from .models.stacked import StackedConvNet, stack_inputs

    k = len(models)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    aug = make_augment(p, dataset)
    stack = StackedConvNet(models).to(device)
    plan = plan_steps(p.budget, p.passes, p.batch_size, task.set_size,
                      None if task.rounds is not None else reference_size)
    if compile == "auto":
        compile = compile_pays(k * plan.samples, task.x[0].numel(), device)
    net = Forward(stack, compile)
    marks = checkpoint_steps(plan.total_steps, p.checkpoints)
    clock, eval_clocks = Clock(device), [Clock(device) for _ in models]
    curves = [Curve(test, tuple(targets), curve_policy or CurvePolicy(), p.eval_batch_size, progress=progress)]
    curves += [Curve(test, tuple(targets), curves[0].policy, p.eval_batch_size, like=curves[0], progress=progress)
               for _ in models[1:]]

    def loss_fn(batch):
        idx = torch.cat(batch).to(task.x.device)  # seed-major: K batches of B, one gather
        xs = task.x[idx]
        if aug is not None:
            xs = aug.forward_groups(xs, k)
        out = net(stack_inputs(list(xs.chunk(k))))  # (B, K, classes)
        y = task.y[idx].view(k, -1).t()
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="sum") / y.shape[0]

    def checkpoint(step: int, epoch: int) -> bool:
        stack.unstack_into(models)
        for m, curve, ec in zip(models, curves, eval_clocks):
            with ec:
                curve.add(m, {"step": step, "epoch": epoch, "train_seconds": clock.total / k,
                              "cpu_seconds": clock.cpu / k}, last=step == marks[-1])
        return False

    streams = [schedule_batches(plan, task.stream_for(g)) for g in gens]
    batches = ((group[0][0], [idx for _, idx in group]) for group in zip(*streams))
    steps = fit(stack, batches, loss_fn, Schedule.from_protocol(p, plan.passes, plan.steps_per_pass), clock=clock,
                checkpoints=marks, on_checkpoint=checkpoint, progress=progress, desc=f"train {k} seeds together",
                where=f"seeds {list(seeds)}", precision=p.precision)
    runs = []
    for seed, curve, ec in zip(seeds, curves, eval_clocks):
        extra = {"plan": plan.to_dict(p.checkpoints), "curve": curve.describe(), "compile": net.status,
                 "together": k}
        runs.append(SeedRun(seed=seed, final_acc=curve.points[-1]["acc"], curve=curve.points,
                            train_seconds=clock.total / k, eval_seconds=ec.total, steps=steps,
                            cpu_seconds=clock.cpu / k, extra=extra, eval_cpu_seconds=ec.cpu))
    return runs


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
             curve: str | CurvePolicy = "screened", compile: bool | str = False, together: int = 1) -> EvalResult:
    """Train ``arch`` on ``synset`` once per seed and test on ``test``.

    ``synset`` is a :class:`SyntheticSet` or a path to one. ``source`` is the training split a
    subset-schedule indexes (loaded from the file's reference when omitted); ``val`` is used by
    protocols that select a checkpoint (graphs), never ``test``; both are loaded from ``root`` (else
    ``$CONDENSE_DATA``) when omitted. ``stop_at_targets`` ends an image
    run once the highest target is reached: its accuracy is then not a final accuracy, and the run
    says so (``stopped_early``); use it only for reference runs that establish time-to-accuracy.

    ``budget_ipc`` fixes the step budget (DESIGN §3): every set trains what the protocol gives on
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
    with tf32_mode(p.precision, device) as tf32:
        runs = _train_runs(s, test, arch, kw, p, kind, list(seeds), device, val, root, source, progress,
                           stop_at_targets, reference, targets, policy, compile, together)
    for run in runs:
        run.extra["tf32"] = tf32  # whether TF32 was allowed (never on a CPU; on a GPU only under precision=tf32)
    return _result(arch, p, kw, runs, targets, s, device)


def _train_runs(s, test, arch, kw, p, kind, seeds, device, val, root, source, progress, stop_at_targets,
                reference, targets, policy, compile, together) -> list[SeedRun]:
    """Every seed's run of :func:`evaluate`: graphs one at a time; images alone or stacked."""
    runs = []
    if kind == "graphs":
        from .graph_eval import train_graphs

        if val is None:
            from .data import load_dataset

            val = load_dataset(s.source_dataset, "val", root=root)
        if getattr(val, "split", "val") != "val" or getattr(val, "name", s.source_dataset) != s.source_dataset:
            raise ValueError(f"checkpoints are selected on the 'val' split of {s.source_dataset}, got "
                             f"{getattr(val, 'name', '?')}/{getattr(val, 'split', '?')} (never the test split)")
        for seed in seeds:
            torch.manual_seed(seed)
            model = create_model(arch, test.num_node_features, s.num_classes,
                                 edge_dim=test.num_edge_features or None, **kw).to(device)
            runs.append(SeedRun(**train_graphs(model, s, p, seed, device, test, val, progress=progress,
                                               reference_size=reference)))
    else:
        task, test_xy = _image_task(s, test, device, source, p, root)
        if together > 1 and not stop_at_targets:
            return _together(arch, kw, s, test, task, test_xy, p, seeds, device, progress, reference, targets,
                             policy, compile, together)
        for seed in seeds:
            torch.manual_seed(seed)
            model = create_model(arch, tuple(test.shape), s.num_classes, **kw).to(device)
            runs.append(train_images(model, task, p, seed, device, test_xy, s.source_dataset, progress,
                                     stop_at=max(targets) if stop_at_targets and targets else None,
                                     reference_size=reference, targets=targets, curve_policy=policy,
                                     compile=compile))
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
    task, val_xy = _image_task(synset, val, device, None, p)
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


def _image_task(s: SyntheticSet, test, device, source, protocol: Protocol, root=None) -> tuple[ImageTask, tuple]:
    test_xy = test.tensors(device)
    if s.kind == "subset-schedule":
        rounds = int(s.indices.shape[0])
        if rounds < protocol.passes:
            raise ValueError(f"{s.path or 'the schedule'}: {rounds} rounds, but protocol {protocol.name!r} trains "
                             f"{protocol.passes} epochs (one round each); condense it for this protocol")
        if source is None:
            from .data import load_dataset

            source = load_dataset(s.source_dataset, s.source_split, root=root)
        s.resolve(source)  # refuses a fingerprint mismatch
        x, y = source.tensors(device)
        return ImageTask(x=x, y=y, rounds=s.indices.to(device).long()), test_xy
    soft = s.soft_labels.to(device).float() if s.soft_label_policy == "static" else None
    where = s.path or f"the {s.method!r} set"
    x, y = s.instances()
    task = ImageTask(x=x.to(device), y=y.to(device), soft=soft, num_classes=s.num_classes)
    if protocol.augment == "fkd":
        if s.soft_label_policy == "replay":
            if s.replay_epochs < protocol.passes:
                raise ValueError(f"{where}: stores {s.replay_epochs} replay epochs of soft labels but protocol "
                                 f"{protocol.name!r} trains {protocol.passes}; condense it for this protocol "
                                 "(replayed labels are never reused for a second epoch)")
            if s.replay_batch != protocol.batch_size:
                raise ValueError(f"{where}: its replay labels were made for batches of {s.replay_batch} but protocol "
                                 f"{protocol.name!r} trains batches of {protocol.batch_size}")
            task.replay, task.replay_batch = s.replay, s.replay_batch
            task.replay_logits = s.soft_labels.to(device)
        return task, test_xy
    if protocol.loss == "kd" and soft is None:
        why = ("its soft labels are per-epoch replay labels: evaluate it under the fkd protocol"
               if s.soft_label_policy == "replay" else "random-kd is the random baseline with teacher soft labels")
        raise ValueError(f"protocol {protocol.name!r} trains on static soft labels, and this {s.method!r} set has "
                         f"none ({why})")
    return task, test_xy
