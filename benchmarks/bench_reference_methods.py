"""One iteration of DM and of MTT as the suite runs them, against a plain PyTorch loop of each official
algorithm, in one process.

- **DM** (``main_DM.py``): a fresh ConvNet, per class the mean embedding of ``--batch-real`` real images
  against the class's IPC synthetic images, Siamese DSA, SGD on the pixels. Ours:
  :func:`condense.methods.dm.dm_loss` on the suite's ConvNet (pair-sum pooling, data on the device);
  plain: the same steps on DC's layers (``nn.AvgPool2d``) with one embedding call per class and batch.
- **MTT** (``distill.py``): N unrolled SGD steps of a student from an expert's parameters, then the
  normalised trajectory loss and its gradient to the pixels and the step size. Ours:
  :func:`condense.methods.mtt.student_steps` (``torch.func.functional_call`` on the suite's ConvNet);
  plain: the official ``ReparamModule`` pattern written out (parameters as views of one flat vector set
  on the modules of a DC-layer network before every forward).

The two sides alternate round by round; the median round counts. Prints seconds per iteration and the
ratio plain / ours (above 1: ours is faster). Run with nothing else on the machine.

    python -m benchmarks.bench_reference_methods --dataset-shape 1 28 28 --ipc 10 --rounds 3
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.bench_evaluator import dc_network
from condense._alloc import keep_freed_memory
from condense._alloc import status as allocator_status
from condense.augment import DSA
from condense.methods.dm import dm_loss
from condense.methods.mtt import matching_loss, student_steps
from condense.models import create_model


def dm_iteration(net, real, syn, aug, opt, per_class_calls: bool) -> float:
    t0 = time.perf_counter()
    for p in net.parameters():
        p.requires_grad_(False)
    if per_class_calls:  # the plain loop: embed each class's real and synthetic batch separately
        loss = syn.new_zeros(())
        for xr, xs in zip(real, syn.split(syn.shape[0] // len(real))):
            xr, xs = aug.siamese(xr, xs)
            with torch.no_grad():
                mr = net.embed(xr).mean(0)
            loss = loss + ((mr - net.embed(xs).mean(0)) ** 2).sum()
    else:
        loss = dm_loss(net.embed, real, list(syn.split(syn.shape[0] // len(real))), aug)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


class Reparam:
    """The official ``ReparamModule`` pattern: a flat vector's views set as the module's parameters."""

    def __init__(self, net):
        self.net = net
        self.slots = [(m, n, p.shape) for m in net.modules() for n, p in list(m.named_parameters(recurse=False))]
        for m, n, _ in self.slots:
            delattr(m, n)

    def __call__(self, flat, x):
        i = 0
        for m, n, shape in self.slots:
            setattr(m, n, flat[i:i + shape.numel()].view(shape))
            i += shape.numel()
        return self.net(x)


def plain_student(rep: Reparam, start, images, labels, lr, steps, batch, g, aug):
    theta, chunks = start, []
    for _ in range(steps):
        if not chunks:
            chunks = list(torch.randperm(images.shape[0], generator=g).split(batch))
        idx = chunks.pop()
        loss = F.cross_entropy(rep(theta, aug(images[idx])), labels[idx])
        theta = theta - lr * torch.autograd.grad(loss, theta, create_graph=True)[0]
    return theta


def mtt_iteration(step_fn, start, target, syn, y, lr, steps) -> float:
    t0 = time.perf_counter()
    end = step_fn(start.clone().requires_grad_(True), syn, y, lr, steps)
    loss = matching_loss(end, start, target)
    syn.grad = lr.grad = None
    loss.backward()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset-shape", type=int, nargs=3, default=[1, 28, 28], metavar=("C", "H", "W"))
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--batch-real", type=int, default=256)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--syn-steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=["dm", "mtt"], choices=("dm", "mtt"))
    ap.add_argument("--allocator", choices=("suite-heap", "as-is"), default="suite-heap",
                    help="suite-heap (default): the process's large blocks from the C heap, as the suite's entry "
                         "points set it (condense._alloc), for both sides; as-is: glibc's allocator as it comes")
    args = ap.parse_args(argv)
    if args.allocator == "suite-heap":
        keep_freed_memory()
    shape, c = tuple(args.dataset_shape), args.classes
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"input {'x'.join(map(str, shape))}, {c} classes, IPC {args.ipc}, width {args.width}; "
          f"allocator {allocator_status()} (both sides)")
    print(f"{'method':>6} {'ours s/it':>10} {'plain s/it':>11} {'ratio':>6}")
    torch.manual_seed(0)
    syn0 = torch.randn(c * args.ipc, *shape)
    aug = DSA.for_dataset("mnist" if shape[0] == 1 else "cifar10")
    if "dm" in args.methods:
        real = [torch.randn(args.batch_real, *shape) for _ in range(c)]
        times = {"ours": [], "plain": []}
        for r in range(args.rounds + 1):
            for side in ("ours", "plain"):
                net = create_model("convnet", shape, c, width=args.width)
                net = dc_network(net) if side == "plain" else net
                syn = syn0.clone().requires_grad_(True)
                opt = torch.optim.SGD([syn], lr=1.0, momentum=0.5)
                t = dm_iteration(net, real, syn, aug, opt, per_class_calls=side == "plain")
                if r:  # round 0 warms up
                    times[side].append(t)
        a, b = statistics.median(times["ours"]), statistics.median(times["plain"])
        print(f"{'dm':>6} {a:>10.3f} {b:>11.3f} {b / a:>6.2f}", flush=True)
    if "mtt" in args.methods:
        ours_net = create_model("convnet", shape, c, width=args.width)
        plain_net = dc_network(copy.deepcopy(ours_net))
        shapes = [(n, p.shape) for n, p in ours_net.named_parameters()]
        start = torch.cat([p.detach().reshape(-1) for p in ours_net.parameters()])
        target = start + 0.01 * torch.randn_like(start)
        y = torch.arange(c).repeat_interleave(args.ipc)
        rep = Reparam(plain_net)
        steps = {
            "ours": lambda s, x, yy, lr, n: student_steps(ours_net, shapes, s, x, yy, lr, n, x.shape[0],
                                                          torch.Generator().manual_seed(0), aug),
            "plain": lambda s, x, yy, lr, n: plain_student(rep, s, x, yy, lr, n, x.shape[0],
                                                           torch.Generator().manual_seed(0), aug),
        }
        times = {"ours": [], "plain": []}
        for r in range(args.rounds + 1):
            for side in ("ours", "plain"):
                syn = syn0.clone().requires_grad_(True)
                lr = torch.tensor(0.01, requires_grad=True)
                t = mtt_iteration(steps[side], start, target, syn, y, lr, args.syn_steps)
                if r:
                    times[side].append(t)
        a, b = statistics.median(times["ours"]), statistics.median(times["plain"])
        print(f"{'mtt':>6} {a:>10.3f} {b:>11.3f} {b / a:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
