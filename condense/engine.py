"""The one training loop of the suite: students (images and graphs), teachers and herding's network.

Everything that trains a model goes through :func:`fit`:

- the optimizer and its learning-rate schedule come from a :class:`Schedule` (built from a protocol
  or a teacher recipe): a ``torch.optim`` optimizer (``foreach`` kernels) and a ``LambdaLR`` stepped
  once per optimizer step, whose multiplier is DC's step drop, a per-pass or per-step cosine, or a
  constant;
- DC recreates its optimizer when the learning rate drops (the momentum buffer restarts): the
  schedule says at which step, and :func:`fit` rebuilds the optimizer there;
- divergence is checked without a host sync per step: the losses are summed on the device and the
  sum is read at every checkpoint and at the end of every pass, where a NaN or infinite loss stops
  the run with :class:`TrainingDiverged`;
- training time is measured on both clocks (wall, CUDA-synchronised, and process CPU) around the
  steps only; checkpoint hooks run outside it;
- one progress bar per run.

Adding a loss is a ``loss_fn``; adding a schedule is one branch of :meth:`Schedule.multiplier`.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm
from ._log import note, one_line

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("dc-step", "cosine-epoch", "cosine-step", "constant")


def checkpoint_steps(total_steps: int, count: int) -> list[int]:
    """``count`` evenly spaced steps ending at ``total_steps`` (every 2 % of training for 50)."""
    count = max(1, min(count, total_steps))
    return sorted({math.ceil(total_steps * i / count) for i in range(1, count + 1)})


def dc_drop_epoch(epochs: int) -> int:
    """DC: the rate is ×0.1 from epoch E//2+2 on (after epoch E//2+1), with a fresh optimizer."""
    return epochs // 2 + 2


def lr_multiplier(kind: str, epoch: int, step: int, total_steps: int, epochs: int, floor: float = 0.0) -> float:
    """The learning rate ÷ the base rate at (epoch, global step): DC's step drop, a cosine per epoch
    or per step down to ``floor`` (= eta_min / lr), or a constant. The one definition of every
    schedule; :class:`Schedule` and ``Protocol.lr_at`` read it."""
    if kind == "dc-step":
        return 1.0 if epoch < dc_drop_epoch(epochs) else 0.1
    if kind == "constant":
        return 1.0
    if kind == "cosine-epoch":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    if kind == "cosine-step":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    raise ValueError(f"unknown schedule {kind!r}; expected one of {', '.join(SCHEDULES)}")


COMPILE_PAYS_PIXELS = 200_000_000


def compile_pays(samples: int, item_numel: int, device) -> bool:
    """Whether ``torch.compile`` pays for a training run (``compile="auto"``): compiling a new shape
    costs 20–40 s on a 2-core CPU with a cold cache, and compiled bf16 ConvNet-3 steps at batch 100
    took 94 ms on CIFAR-10. Eager steps with the ConvNet's pair-sum pooling take 100–180 ms there, so
    CIFAR-10 at IPC 10 under ``dc`` quick (9.2·10⁷ training pixels) trained in 42.9 s eagerly against
    48.2 s compiled, compilation included. It pays from about 2·10⁸ pixels (CIFAR-10 at IPC 50:
    4.6·10⁸); smaller runs (every IPC 1 and IPC 10 run, MNIST at IPC 50: 1.2·10⁸) train eagerly. On a
    GPU it is always tried."""
    return torch.device(device).type == "cuda" or samples * item_numel >= COMPILE_PAYS_PIXELS


def _fallback(e: BaseException) -> str:
    return f"{type(e).__name__}: {one_line(e)[:160]}"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class Clock:
    """Seconds inside ``with clock:`` blocks, on the wall clock (synchronising CUDA before reading)
    and on this process's CPU clock. On a shared CPU machine the CPU time of a single-threaded run is
    the figure that other jobs do not inflate; on a GPU the wall clock is the one that counts."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.cuda = torch.device(device).type == "cuda"
        self.total = 0.0
        self.cpu = 0.0
        self._t = self._c = 0.0

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
        self._t, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.total += time.perf_counter() - self._t
        self.cpu += time.process_time() - self._c


@dataclass(frozen=True)
class Schedule:
    """Optimizer and learning rate over a run of ``passes`` passes of ``steps_per_pass`` steps.

    ``epochs`` is the schedule's epoch count where it differs from ``passes`` (DC trains epochs
    0..E, i.e. E+1 passes, and drops the rate after epoch E//2+1)."""

    optimizer: str
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    kind: str = "constant"
    eta_min: float = 0.0
    epochs: int = 1
    passes: int = 1
    steps_per_pass: int = 1
    decay: str = "all"                # "matrices": weight decay only on weights of more than one dimension

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r}; expected one of {', '.join(SCHEDULES)}")

    @classmethod
    def from_protocol(cls, p, passes: int, steps_per_pass: int) -> "Schedule":
        return cls(optimizer=p.optimizer, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay,
                   nesterov=p.nesterov, kind=p.schedule, eta_min=p.eta_min, epochs=p.epochs, passes=passes,
                   steps_per_pass=steps_per_pass, decay=getattr(p, "decay", "all"))

    @property
    def total_steps(self) -> int:
        return self.passes * self.steps_per_pass

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_pass

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based)."""
        return self.lr * self.multiplier(step)

    def multiplier(self, step: int) -> float:
        return lr_multiplier(self.kind, self.epoch_of(step), step, self.total_steps, self.epochs,
                             self.eta_min / self.lr)

    def resets_at(self, step: int) -> bool:
        """DC recreates its optimizer at the first step of the drop epoch (the momentum restarts)."""
        return self.kind == "dc-step" and step == dc_drop_epoch(self.epochs) * self.steps_per_pass and step > 0

    def build(self, params, start: int = 0, state: dict | None = None):
        """(optimizer, LambdaLR) positioned at step ``start``; ``state`` restores an optimizer's
        state dict (a resumed run) before the schedule takes over its learning rate."""
        params = list(params)
        if self.decay == "matrices":  # SRe2L/FKD's get_parameters: no decay on biases and norm scales
            params = [{"params": [q for q in params if q.ndim > 1]},
                      {"params": [q for q in params if q.ndim <= 1], "weight_decay": 0.0}]
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                                  nesterov=self.nesterov, foreach=True)
        elif self.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, foreach=True)
        else:
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, foreach=True)
        if state is not None:
            opt.load_state_dict(state)
            for group in opt.param_groups:
                group["lr"] = self.lr
                group.pop("initial_lr", None)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: self.multiplier(start + k))
        return opt, sched


class Forward:
    """A model's training forward pass, compiled with ``torch.compile`` when asked and possible.

    Compilation happens at the first call of each new input shape; when it fails there (no C
    compiler, an unsupported operator, a platform without Inductor) the model runs eagerly from then
    on, and ``status`` says why. A compiled forward computes the same function; its kernels round
    differently, so a compiled run is recorded as such."""

    def __init__(self, model: torch.nn.Module, compile: bool = False):
        self.model, self.fn, self.status = model, None, "off"
        if compile:
            try:
                self.fn, self.status = torch.compile(model), "on"
            except Exception as e:  # noqa: BLE001 - any failure means: run eagerly
                self.status = f"fell back to eager: {_fallback(e)}"

    def __call__(self, *args, **kwargs):
        if self.fn is not None:
            try:
                return self.fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - compilation errors surface at a call
                self.fn, self.status = None, f"fell back to eager: {_fallback(e)}"
                note(f"torch.compile is not available here ({_fallback(e)}); training eagerly")
        return self.model(*args, **kwargs)


def update(opt, sched, loss: torch.Tensor) -> None:
    """One optimizer step and one schedule step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


class _Divergence:
    """The running sum of detached losses on the device; read only where the caller asks."""

    def __init__(self):
        self.total = None
        self.since = 0

    def add(self, loss: torch.Tensor) -> None:
        d = loss.detach().float()
        self.total = d if self.total is None else self.total + d

    def check(self, step: int, where: str) -> None:
        if self.total is not None and not bool(torch.isfinite(self.total)):
            raise TrainingDiverged(f"loss became {float(self.total)} between step {self.since} and step {step} "
                                   f"({where})")
        self.total, self.since = None, step


@contextlib.contextmanager
def tf32_mode(precision: str, device):
    """Whether matrix products and convolutions on a CUDA device may run in TF32, for the duration:
    only under ``precision="tf32"``. cuDNN allows TF32 convolutions by default, so a protocol that says
    fp32 would otherwise run its convolutions at 10-bit mantissas; the previous settings come back
    after. Yields whether TF32 is allowed (always False off CUDA, where there is none)."""
    if torch.device(device).type != "cuda":
        yield False
        return
    allowed = precision == "tf32"
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield allowed
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def fit(model: torch.nn.Module, batches: Iterable[tuple[int, Any]], loss_fn: Callable[[Any], torch.Tensor],
        schedule: Schedule, *, clock: Clock, checkpoints: Iterable[int] = (),
        on_checkpoint: Callable[[int, int], bool | None] | None = None,
        on_pass_end: Callable[[int, int, torch.optim.Optimizer], None] | None = None, start: int = 0, opt_state: dict | None = None,
        progress: bool = False, desc: str = "train", where: str = "", precision: str = "fp32") -> int:
    """Train ``model`` on ``batches`` ((pass, batch) pairs) by ``loss_fn``; returns the steps taken.

    ``on_checkpoint(step, pass)`` runs after each step in ``checkpoints`` (outside the clock) and may
    return True to stop early; ``on_pass_end(step, pass, optimizer)`` runs after the last step of every
    pass (a teacher saves its state there). ``start`` and ``opt_state`` resume a run at that step.
    ``precision="bf16"`` runs ``loss_fn`` (forward and loss) under bfloat16 autocast; the backward
    pass and the optimizer stay in fp32 (parameters are never cast). ``tf32`` trains as ``fp32`` here;
    whether a CUDA device may use TF32 is :func:`tf32_mode`'s."""
    marks = set(checkpoints)
    if precision not in ("fp32", "bf16", "tf32"):
        raise ValueError(f"precision must be fp32, tf32 or bf16, got {precision!r}")
    device_type = "cuda" if clock.cuda else "cpu"
    opt, sched = schedule.build(model.parameters(), start, opt_state)
    watch = _Divergence()
    watch.since = start
    step = start
    model.train()
    bar = tqdm(total=schedule.total_steps, initial=start, desc=desc, disable=not progress, leave=False, unit="step")
    try:
        for epoch, batch in batches:
            if schedule.resets_at(step):
                opt, sched = schedule.build(model.parameters(), step)
            with clock:
                with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss = loss_fn(batch)
                update(opt, sched, loss)
            watch.add(loss)
            step += 1
            bar.update(1)
            if on_pass_end is not None and step % schedule.steps_per_pass == 0:
                watch.check(step, where)
                on_pass_end(step, epoch, opt)  # before the next pass draws anything
            if step in marks:
                watch.check(step, where)
                if on_checkpoint is not None and on_checkpoint(step, epoch):
                    return step
        watch.check(step, where)
        return step
    finally:
        bar.close()
