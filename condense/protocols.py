"""Named, versioned evaluation protocols (docs/design.md §5). Each result records the protocol in full.

``dc`` is the canonical protocol of Dataset Condensation (Zhao et al., ICLR 2021), as its code runs:
ConvNet-3 (width 128, instance norm, avg-pool), SGD lr 0.01, momentum 0.9, weight decay 5e-4,
batch 256, ``E+1`` passes over the set (epochs 0..E), and after epoch ``E//2+1`` the learning rate
drops ×0.1 with a fresh optimizer (momentum reset). ``paper``: E=1000 with DSA augmentation;
``quick``: E=300 without augmentation.

``rs2`` follows RS2 (Okanovic et al., ICLR 2024) at IPC budgets: ConvNet, SGD lr 0.01 with Nesterov
momentum 0.9 and weight decay 5e-4, one step per round on the whole round (batch = subset size),
a cosine schedule over the total steps stepped every iteration down to ``eta_min`` 1e-4, random
crop + flip; ``paper`` 1000 rounds, ``quick`` 300. ``rs2-ratio`` is its selection-ratio setting:
SGD lr 0.1, Nesterov, batch 128, 200 epochs (``quick``: 20). ``kd`` trains soft-label students as
INFER validates them; the graph track uses ``graph``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .budget import BUDGETS
from .checks import Rule, check_config
from .engine import OPTIMIZERS, SCHEDULES, dc_drop_epoch, lr_multiplier


PRESETS = ("quick", "paper")
AUGMENTS = ("dsa", "crop-flip", "rs2", "fkd")
LOSSES = ("ce", "kd")
FREQUENCY_MODES = ("proportional", "once")
PRECISIONS = ("fp32", "bf16", "tf32")
DECAYS = ("all", "matrices")
GRAPH_PROTOCOLS = {"graph", "mirage-official"}
SELECTIONS = ("val-acc", "val-auc")
LR_FROM_SET = "from-set"           # lr="from-set": the set's learned synthetic_lr (MTT, DATM), as MTT evaluates


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    preset: str
    epochs: int
    batch_size: int | None             # None: one step per round (the whole round's subset)
    optimizer: str = "sgd"
    lr: float | str = 0.01            # or "from-set": the set's synthetic_lr (a group of its own)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "dc-step"          # dc-step | cosine-epoch | cosine-step | constant
    eta_min: float = 0.0
    augment: str | None = None         # dsa | crop-flip | rs2 (RS2's per-dataset choice) | None
    loss: str = "ce"                   # ce | kd
    temperature: float = 1.0
    mixup_alpha: float = 0.0
    checkpoints: int = 50              # test accuracy every 1/checkpoints of the steps (2 %)
    eval_batch_size: int = 1024
    arch_kwargs: tuple = ()            # fixed architecture settings, e.g. (("width", 128),)
    frequency_mode: str | None = None  # graph sets with pattern frequencies (Mirage): proportional | once
    budget: str = "steps"              # steps: every row trains the plain IPC×C set's steps; epochs: its own passes
    precision: str = "fp32"            # fp32 (no TF32 on a GPU); tf32 (TF32 allowed on a GPU); bf16: forward and
                                       # loss under bfloat16 autocast. Each is a separate group
    accumulate: int = 1                # forward/backward chunks per optimizer step (gradient accumulation)
    decay: str = "all"                 # weight decay on all parameters, or on "matrices" (weights of > 1 dim)
    select: str = "val-acc"            # graphs: the checkpoint with the best validation accuracy, or ROC-AUC
                                       # ("val-auc": on two-class tasks, whose headline metric it is)
    check_initial: bool = False        # graphs: also a checkpoint before the first step (the untrained model)
    drop_last: bool = False            # each pass drops its last partial batch (a DataLoader's drop_last=True)

    def __post_init__(self):
        check_config(
            self, f"protocol {self.name}", version=Rule(lo=1), preset=Rule(choices=PRESETS),
            epochs=Rule(lo=1, hi=1_000_000), batch_size=Rule(lo=1, hi=10_000_000),
            optimizer=Rule(choices=OPTIMIZERS),
            lr=Rule(choices=(LR_FROM_SET,)) if isinstance(self.lr, str) else Rule(lo=0, hi=100, lo_open=True),
            momentum=Rule(lo=0, hi=1, hi_open=True), weight_decay=Rule(lo=0, hi=10_000),
            schedule=Rule(choices=SCHEDULES), eta_min=Rule(lo=0), augment=Rule(choices=AUGMENTS),
            loss=Rule(choices=LOSSES), temperature=Rule(lo=0, lo_open=True, hi=1000), mixup_alpha=Rule(lo=0, hi=100),
            checkpoints=Rule(lo=1, hi=100_000), eval_batch_size=Rule(lo=1, hi=1_000_000),
            frequency_mode=Rule(choices=FREQUENCY_MODES), budget=Rule(choices=BUDGETS),
            precision=Rule(choices=PRECISIONS), accumulate=Rule(lo=1, hi=1024), decay=Rule(choices=DECAYS),
            select=Rule(choices=SELECTIONS))
        if self.batch_size is not None and self.batch_size % self.accumulate:
            raise ValueError(f"protocol {self.name}.batch_size ({self.batch_size}) must be a multiple of accumulate "
                             f"({self.accumulate})")
        if not isinstance(self.lr, str) and self.eta_min > self.lr:
            raise ValueError(f"protocol {self.name}.eta_min must be <= lr ({self.lr:g}), got {self.eta_min:g}")

    @property
    def kind(self) -> str:
        """The dataset kind this protocol trains on: ``graphs`` for ``graph``, else ``images``."""
        return "graphs" if self.name in GRAPH_PROTOCOLS else "images"

    @property
    def passes(self) -> int:
        """Passes over the data: DC's loop runs epochs 0..E inclusive."""
        return self.epochs + 1 if self.schedule == "dc-step" else self.epochs

    def lr_at(self, epoch: int, step: int = 0, total_steps: int = 1) -> float:
        """Learning rate for (epoch, global step) (:func:`condense.engine.lr_multiplier`); ``dc-step``
        drops ×0.1 after epoch E//2+1."""
        return self.lr * lr_multiplier(self.schedule, epoch, step, total_steps, self.epochs, self.eta_min / self.lr)

    def resets_optimizer(self, epoch: int) -> bool:
        """DC recreates its SGD optimizer when the lr drops (the momentum buffer restarts)."""
        return self.schedule == "dc-step" and epoch == dc_drop_epoch(self.epochs)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["arch_kwargs"] = dict(self.arch_kwargs)
        if d["frequency_mode"] is None:  # a graph-only field: other protocols' records stay as they were
            del d["frequency_mode"]
        for k, default in (("precision", "fp32"), ("accumulate", 1), ("decay", "all"), ("select", "val-acc"),
                           ("check_initial", False)):
            if d[k] == default:  # defaults: records from before the field keep their key
                del d[k]
        return d

    def label(self) -> str:
        """A short name for tables: ``dc v1 quick``, marked when the old epoch budget is in use."""
        base = f"{self.name} v{self.version} {self.preset}" + (f" · {self.precision}" if self.precision != "fp32" else "")
        base += " · lr from the set" if self.lr == LR_FROM_SET else ""
        return base + (" · epoch budget (a paper's own protocol)" if self.budget == "epochs" else "")

    def replace(self, **kw) -> "Protocol":
        return dataclasses.replace(self, **kw)

    def resolved(self, synset) -> "Protocol":
        """The protocol a run trains under: ``lr="from-set"`` takes the set's learned ``synthetic_lr``
        (a one-line error for a set without one); any other protocol is itself."""
        if self.lr != LR_FROM_SET:
            return self
        lr = getattr(synset, "synthetic_lr", None)
        if lr is None:
            raise ValueError(f"{getattr(synset, 'path', None) or 'the set'}: protocol {self.name!r} with lr='from-set' "
                             "trains at the set's learned learning rate, and this set records none (synthetic_lr)")
        return self.replace(lr=float(lr))


def _dc(preset: str) -> Protocol:
    common = dict(name="dc", version=1, preset=preset, batch_size=256, optimizer="sgd", lr=0.01,
                  momentum=0.9, weight_decay=5e-4, schedule="dc-step",
                  arch_kwargs=(("width", 128), ("norm", "instancenorm"), ("pooling", "avgpool")))
    if preset == "paper":
        return Protocol(epochs=1000, augment="dsa", **common)
    return Protocol(epochs=300, augment=None, **common)


def _graph(preset: str) -> Protocol:
    """Graph classification: Adam 1e-3, batch 32; model selection on ``val`` only.

    Version 2 adds ``frequency_mode`` for sets whose graphs carry frequencies (Mirage summaries):
    ``proportional`` (the paper: every epoch draws as many graphs as the set holds, i.i.d. with
    probability proportional to frequency) or ``once`` (the official code: every graph once per epoch).
    Sets without frequencies train as before (each graph once per epoch).
    Version 3: GNNs have 2 layers, as in the official Mirage NCI1 and DD pipelines, so Mirage's trees
    (as deep as the GNN) are 2-hop, the official NCI1 setting.
    Version 4: no normalisation layers (none in GIN's MLP either), hidden width 128 and dropout 0.5
    after every layer, as the official Mirage NCI1 pipeline runs its GNNs. BatchNorm in training mode
    pools statistics over every node of a batch, tree leaves included, so a computation tree would no
    longer embed its root as the source graph does (the property Mirage rests on).
    Version 5: on two-class tasks, whose headline metric is ROC-AUC, the checkpoint is the one with the
    best validation ROC-AUC (ties to the later one), as the official Mirage scripts select; validation
    accuracy, flat at the majority rate on MUTAG, picked the last checkpoint by its tie rule.
    """
    return Protocol(name="graph", version=5, select="val-auc", preset=preset, epochs=300 if preset == "paper" else 100,
                    batch_size=32, optimizer="adam", lr=1e-3, momentum=0.0, weight_decay=0.0,
                    schedule="constant", augment=None,
                    arch_kwargs=(("hidden", 128), ("num_layers", 2), ("pooling", "sum"), ("norm", "none"),
                                 ("dropout", 0.5)),
                    frequency_mode="proportional")


def _mirage_official(preset: str) -> Protocol:
    """The official Mirage training (``NCI1/graph-nci-finalize-reduce-curr.py``), to reproduce its
    figures: the official GNNs (``gcn-mirage``, ``gin-mirage``: :mod:`condense.models.gnn_mirage`),
    Adam lr 1e-3 with weight decay 100, batch 500, each tree-set once per epoch, 300 epochs over the
    set (the epoch budget: the set's own passes), validation and test ROC-AUC before the first epoch
    and after every one, the checkpoint with the best validation ROC-AUC (ties to the later). Its
    report, the 5 best of 10 seeds by validation ROC-AUC, is the leaderboard's paper aggregation.
    ``quick`` and ``paper`` are the same."""
    return Protocol(name="mirage-official", version=1, preset=preset, epochs=300, batch_size=500, optimizer="adam",
                    lr=1e-3, momentum=0.0, weight_decay=100.0, schedule="constant", augment=None, checkpoints=300,
                    arch_kwargs=(("hidden", 128), ("num_layers", 2), ("pooling", "sum"), ("norm", "none"),
                                 ("dropout", 0.5)),
                    frequency_mode="once", budget="epochs", select="val-auc", check_initial=True)


def _rs2(preset: str) -> Protocol:
    """RS2 at IPC budgets (the paper's comparison with dataset distillation).

    Version 2: the augmentation is RS2's own per dataset (``augment="rs2"``): random crop with
    4-pixel padding and a horizontal flip on MNIST, none on Fashion-MNIST, crop + flip elsewhere.
    Version 3: none on SVHN and Tiny-ImageNet either (RS2's code defines both without a transform),
    crops padded with black in pixel space as torchvision pads PIL images (flip off on digits); on
    Tiny-ImageNet at IPC 10 and 50 batches of 200 (:func:`for_cell`)."""
    return Protocol(name="rs2", version=3, preset=preset, epochs=1000 if preset == "paper" else 300,
                    batch_size=None, optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True,
                    weight_decay=5e-4, schedule="cosine-step", eta_min=1e-4, augment="rs2",
                    arch_kwargs=(("width", 128), ("norm", "instancenorm"), ("pooling", "avgpool")))


def _rs2_ratio(preset: str) -> Protocol:
    """RS2 at selection ratios (ResNet-18 in the paper's time-to-accuracy study,
    ``run_timeToAcc_cifar10.sh``): SGD lr 0.1, Nesterov, weight decay 5e-4, batch 128 with the last
    partial batch of each round dropped (``drop_last=True``), cosine per step to 1e-4, RS2's transforms
    per dataset (``augment="rs2"``: crop + flip with black padding on CIFAR). v2: ``drop_last`` and
    RS2's transforms (v1: crop + flip padded with the mean colour)."""
    return Protocol(name="rs2-ratio", version=2, preset=preset, epochs=200 if preset == "paper" else 20,
                    batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                    weight_decay=5e-4, schedule="cosine-step", eta_min=1e-4, augment="rs2", drop_last=True)


def _kd(preset: str) -> Protocol:
    """Soft-label students as INFER validates them (``val_static.py``): AdamW 1e-3, weight decay 0.01,
    cosine per epoch, batch 64, crop + flip, mixup Beta(0.8, 0.8) with the static logits interpolated by
    the same λ, and KL divergence at T = 30 (no T² factor). ``paper``: 400 epochs; ``quick``: 200."""
    return Protocol(name="kd", version=1, preset=preset, epochs=400 if preset == "paper" else 200,
                    batch_size=64, optimizer="adamw", lr=1e-3, momentum=0.0, weight_decay=0.01,
                    schedule="cosine-epoch", augment="crop-flip", loss="kd", temperature=30.0,
                    mixup_alpha=0.8,
                    arch_kwargs=(("width", 128), ("norm", "instancenorm"), ("pooling", "avgpool")))


def _fkd(preset: str) -> Protocol:
    """Replayed soft labels as CV-DD's ``validate/train_fkd.py`` trains (FKD; SRe2L's pipeline):
    batch 16 in two accumulated chunks of 8, AdamW lr 1e-3 with weight decay 0.01 on weight matrices
    only, cosine per epoch, KL divergence at T = 20 without T² (each chunk's batch mean over the
    chunks). A set with replay labels trains on its stored views (crops, flips, CutMix) and their
    logits, epoch by epoch; any other set draws the same augmentations from the training seed, with
    its static soft labels (or one-hot hard labels, under cross-entropy) mixed by CutMix's area.
    ``paper`` and ``quick``: 300 epochs, the official length."""
    return Protocol(name="fkd", version=1, preset=preset, epochs=300, batch_size=16, optimizer="adamw", lr=1e-3,
                    momentum=0.0, weight_decay=0.01, schedule="cosine-epoch", augment="fkd", loss="kd",
                    temperature=20.0, mixup_alpha=0.0, accumulate=2, decay="matrices",
                    arch_kwargs=(("width", 128), ("norm", "instancenorm"), ("pooling", "avgpool")))


# The official CV-DD scripts' student batch where it is not 16 (validate/scripts/*/voter_ipc1_r18.sh and the
# relabel scripts: -b 10 at IPC 1 on CIFAR-10 and ImageNette, one batch of the ten images, two chunks of 5).
# RS2's scripts train Tiny-ImageNet at IPC 10 and 50 in batches of 200 (one step per round elsewhere).
CELL_BATCH = {"fkd": {("cifar10", 1): 10, ("imagenette", 1): 10},
              "rs2": {("tinyimagenet", 10): 200, ("tinyimagenet", 50): 200}}


def for_cell(p: Protocol, dataset: str, ipc: int) -> Protocol:
    """A protocol with the settings its official scripts give one dataset and IPC (the batch sizes of
    :data:`CELL_BATCH`); unchanged elsewhere."""
    b = CELL_BATCH.get(p.name, {}).get((dataset, ipc))
    return p if b is None else p.replace(batch_size=b)


PROTOCOLS = {"dc": _dc, "graph": _graph, "mirage-official": _mirage_official, "rs2": _rs2, "rs2-ratio": _rs2_ratio,
             "kd": _kd, "fkd": _fkd}


def register_protocol(name: str, builder, kind: str = "images") -> None:
    if name in PROTOCOLS:
        raise ValueError(f"protocol {name!r} is already registered")
    PROTOCOLS[name] = builder
    if kind == "graphs":
        GRAPH_PROTOCOLS.add(name)


def get_protocol(name: str | Protocol, preset: str = "quick", **overrides) -> Protocol:
    """A protocol by name and preset (``quick`` or ``paper``), fields overridden by keyword."""
    if isinstance(name, Protocol):
        return name.replace(**overrides) if overrides else name
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; available: {', '.join(PROTOCOLS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    p = PROTOCOLS[name](preset)
    return p.replace(**overrides) if overrides else p
