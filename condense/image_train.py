"""Training an image student on a set: the task (images, labels, soft labels, schedule), each
protocol's loss (cross-entropy, ``kd`` with mixup, ``fkd`` replay), augmentation, and the loop for one
seed or several stacked seeds through :func:`condense.engine.fit`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from . import replay
from .augment import DSA, CropFlip, black_level
from .budget import BatchStream, plan_steps, schedule_batches
from .curves import Curve, CurvePolicy
from .engine import Clock, Forward, Schedule, checkpoint_steps, compile_pays, fit
from .data import load_dataset
from .format import SyntheticSet
from .models.stacked import StackedConvNet, stack_inputs, stackable
from .protocols import Protocol
from .results import SeedRun
from .zca import check_fit, fit_zca
from .zca import pixels as zca_pixels


def make_augment(p: Protocol, dataset: str, black: torch.Tensor | None = None):
    """The protocol's augmentation on ``dataset``; ``black``: pixel 0 per channel in the training
    images' standardized space, RS2's padding colour (torchvision pads PIL images with black)."""
    if p.augment is None or p.augment == "fkd":  # fkd: the loss draws or replays its views (fkd_batch)
        return None
    if p.augment == "dsa":
        return DSA.for_dataset(dataset)
    if p.augment == "crop-flip":
        return CropFlip(flip=dataset not in ("digits", "mnist", "fashion-mnist", "svhn"))
    if p.augment == "rs2":  # RS2's own transforms: MNIST flip + crop (pad 4), Fashion-MNIST none
        if dataset in ("fashion-mnist", "svhn", "tinyimagenet"):  # RS2's code: no transform on these
            return None
        if dataset == "mnist":
            return CropFlip(pad=4, flip=True, fill=black)
        return CropFlip(flip=dataset != "digits", fill=black)
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
    black: torch.Tensor | None = None     # pixel 0 per channel, standardized (padding colour of RS2's crops)

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
    aug = make_augment(p, dataset, task.black)
    plan = plan_steps(p.budget, p.passes, p.batch_size, task.set_size,
                      None if task.rounds is not None else reference_size, p.drop_last)
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
    k = len(models)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    aug = make_augment(p, dataset, task.black)
    stack = StackedConvNet(models).to(device)
    plan = plan_steps(p.budget, p.passes, p.batch_size, task.set_size,
                      None if task.rounds is not None else reference_size, p.drop_last)
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


def eval_tensors(s: SyntheticSet, test, device, root=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``test`` as the set's training images were made: standardized by the set's own mean and std
    (an imported release keeps its codebase's constants), then ZCA-whitened by the transform the set
    records, refitted here on the source's training split and checked against it (:mod:`condense.zca`)."""
    zca = s.preprocessing.get("zca") if s.kind == "images" else None
    if zca is None:
        if s.kind != "images" or (tuple(s.mean), tuple(s.std)) == (tuple(test.mean), tuple(test.std)):
            return test.tensors(device)
        return zca_pixels(test.images, s.mean, s.std, True).to(device), test.labels.to(device)
    fitted = fit_zca(s.source_dataset, zca["eps"], zca["normalized"], s.mean, s.std, root=root)
    check_fit(zca, fitted, s.path or f"the {s.method!r} set")
    return fitted(zca_pixels(test.images, s.mean, s.std, zca["normalized"])).to(device), test.labels.to(device)


def image_task(s: SyntheticSet, test, device, source, protocol: Protocol, root=None) -> tuple[ImageTask, tuple]:
    test_xy = eval_tensors(s, test, device, root)
    if s.kind == "subset-schedule":
        rounds = int(s.indices.shape[0])
        if rounds < protocol.passes:
            raise ValueError(f"{s.path or 'the schedule'}: {rounds} rounds, but protocol {protocol.name!r} trains "
                             f"{protocol.passes} epochs (one round each); condense it for this protocol")
        if source is None:
            source = load_dataset(s.source_dataset, s.source_split, root=root)
        s.resolve(source)  # refuses a fingerprint mismatch
        x, y = source.tensors(device)
        return ImageTask(x=x, y=y, rounds=s.indices.to(device).long(), black=black_level(source.mean, source.std)), test_xy
    soft = s.soft_labels.to(device).float() if s.soft_label_policy == "static" else None
    where = s.path or f"the {s.method!r} set"
    x, y = s.instances()
    task = ImageTask(x=x.to(device), y=y.to(device), soft=soft, num_classes=s.num_classes,
                     black=black_level(s.mean, s.std))
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
