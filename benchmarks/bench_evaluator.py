"""The suite's evaluator side by side with a DC-style reference loop, in one process.

The reference is how Dataset Condensation's code evaluates a set: one model at a time, plain
PyTorch (DC's ConvNet, with ``nn.AvgPool2d``: :func:`dc_network`), SGD (lr 0.01, momentum 0.9,
weight decay 5e-4), batch 256, E+1 passes with the rate ×0.1 and a fresh optimizer after pass
E//2+1, and one test pass at the end. The suite trains the same
set under the same protocol (``dc`` quick: ConvNet-3, 300 epochs) with its full 50-point
test-accuracy curve. Two ratios, reference ÷ suite:

- ``total``: wall seconds of the whole evaluation (the suite with its curve, the reference with its
  single test pass);
- ``per step``: training seconds per optimizer step.

Beside them, ``curve/train``: the suite's evaluation seconds over its training seconds, with and
without the final full fp32 pass (the pass that gives the reported accuracy, which the reference
makes too).

A graph dataset's case (``NCI1:50``) trains GCN and GIN against a plain PyG loop instead
(:mod:`benchmarks.bench_graphs`), in its own rows.

Cases: CIFAR-10 at IPC 1, 10 and 50 and MNIST at IPC 10 (real data under ``CONDENSE_DATA``; a case
whose dataset is missing is skipped with the reason), or any ``--cases dataset:ipc``.

    python -m benchmarks.bench_evaluator [--cases cifar10:10 mnist:10] [--epochs 300] [--curve screened] [--repeat 3]

It runs at the suite's defaults (fp32, eager, the screened curve, large blocks kept on the C heap as
``python -m condense`` and ``benchmarks.run`` keep them, with the reference loop in its own process and
glibc's allocator as it comes) unless told otherwise (``--precision``, ``--compile``, ``--curve``,
``--allocator as-is``).

``--repeat N`` runs each case N times and prints the median of each ratio (each run is also a JSON
line, with its ``repeat`` index): reference and suite run one after the other, so a shared host
whose speed drifts between them moves a single run's ratio.

``--gpu-suite`` measures seconds per model with K seeds trained together (one stacked network,
:func:`condense.evaluate.train_images_together`) against the reference loop with the same
augmentation, at IPC 10 on CIFAR-10, 1000 epochs with DSA (``dc`` paper), K = 1, 10 and 100, and
writes one JSON line per case. Every path of it runs on a CPU at tiny sizes (``--device cpu --cases
digits:1 --epochs 2 --ks 1 3 --width 8``), which the tests do.

    python -m benchmarks.bench_evaluator --device cuda --gpu-suite --json results/bench-evaluator/gpu.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import torch
import torch.nn.functional as F

from condense import jsonl
from condense._alloc import keep_freed_memory
from condense._alloc import status as allocator_status
from condense.data import DatasetNotFoundError, dataset_kind, load_dataset
from condense.evaluate import evaluate, make_augment, resolve_device
from condense.methods import create_condenser
from condense.models import create_model
from condense.models.convnet import AvgPool2x2
from condense.protocols import get_protocol

from . import bench_graphs
from .roofline import roofline

DEFAULT_CASES = ("cifar10:1", "cifar10:10", "cifar10:50", "mnist:10")


GPU_SUITE_KS = (1, 10, 100)
GOAL_SECONDS_PER_MODEL = 0.25
RATIO_COLUMNS = (("ratio_total", 8), ("ratio_per_step", 10), ("curve_over_train", 11),
                 ("curve_over_train_without_final", 9))  # the ratios a --repeat median prints, with widths


CPU_FEATURES = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


def cpu_features() -> str:
    """The CPU's units that decide how fast bf16 and fp32 kernels run (from /proc/cpuinfo; "" where
    it cannot be read): ratios measured on hosts with different units are not comparable."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return ""
    return ",".join(f for f in CPU_FEATURES if f in flags)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def dc_network(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` as DC's code builds it: PyTorch's ``nn.AvgPool2d(2, 2)`` wherever the suite's ConvNet
    pools by pair sums (:class:`condense.models.convnet.AvgPool2x2`, the same values); same weights."""
    for name, child in model.named_children():
        if isinstance(child, AvgPool2x2):
            setattr(model, name, torch.nn.AvgPool2d(2, 2))
        else:
            dc_network(child)
    return model


def reference_loop(model, x, y, test_x, test_y, epochs: int, seed: int, batch_size: int = 256, aug=None) -> dict:
    """DC's evaluation loop, written plainly: the baseline every speedup is measured against
    (``aug``: applied to every batch, as DC applies DSA)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    steps, t0 = 0, time.perf_counter()
    model.train()
    for epoch in range(epochs + 1):
        if epoch == epochs // 2 + 2:
            opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
        for idx in torch.randperm(x.shape[0], generator=g).split(batch_size):
            idx = idx.to(x.device)
            xb = x[idx] if aug is None else aug(x[idx])
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    _sync(x.device)
    train = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(test_x[i:i + 256]).argmax(1) == test_y[i:i + 256]).sum())
                      for i in range(0, test_x.shape[0], 256))
    _sync(x.device)
    return {"train_seconds": train, "total_seconds": time.perf_counter() - t0, "steps": steps,
            "acc": 100.0 * correct / test_x.shape[0]}


def _case_data(dataset: str, ipc: int, seed: int, device, root=None):
    train, test = load_dataset(dataset, "train", root=root), load_dataset(dataset, "test", root=root)
    s = create_condenser("random").condense(train, ipc, seed=seed)
    x, y = s.instances()
    return s, test, x.to(device), y.to(device), test.tensors(device)


def _reference(s, test, x, y, tx, ty, epochs: int, seed: int, device) -> dict:
    """DC's network for the case, seeded, trained by :func:`reference_loop`."""
    proto = get_protocol("dc", "quick", epochs=epochs)
    torch.manual_seed(seed)
    model = dc_network(create_model("convnet", tuple(test.shape), s.num_classes, **dict(proto.arch_kwargs)))
    return reference_loop(model.to(device), x, y, tx, ty, epochs, seed)


def reference_case(dataset: str, ipc: int, epochs: int, seed: int = 0, device="cpu", root=None) -> dict:
    """The reference loop of one case, on the case's random set."""
    device = torch.device(device)
    s, test, x, y, (tx, ty) = _case_data(dataset, ipc, seed, device, root)
    return _reference(s, test, x, y, tx, ty, epochs, seed, device)


REFERENCE_CHILD = ("import json, sys; from benchmarks.bench_evaluator import reference_case; "
                   "print(json.dumps(reference_case(sys.argv[1], *map(int, sys.argv[2:5]), device=sys.argv[5])))")


def reference_in_child(dataset: str, ipc: int, epochs: int, seed: int, device) -> dict:
    """The reference loop in a fresh process, with glibc's allocator as it comes (``--allocator
    suite-heap``: the suite's process keeps large blocks on the heap, as its entry points do)."""
    done = subprocess.run([sys.executable, "-c", REFERENCE_CHILD, dataset, str(ipc), str(epochs), str(seed), str(device)],
                          capture_output=True, text=True, env={**os.environ, "CONDENSE_MALLOC": "default"})
    if done.returncode != 0:
        raise RuntimeError(f"the reference process failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_case(dataset: str, ipc: int, epochs: int, checkpoints: int, curve: str, device, seed: int = 0,
             root=None, precision: str = "fp32", compile: bool = False, with_roofline: bool = True,
             reference_apart: bool = False) -> dict:
    s, test, x, y, (tx, ty) = _case_data(dataset, ipc, seed, device, root)
    proto = get_protocol("dc", "quick", epochs=epochs, checkpoints=checkpoints, precision=precision)
    ref = (reference_in_child(dataset, ipc, epochs, seed, device) if reference_apart
           else _reference(s, test, x, y, tx, ty, epochs, seed, device))
    t0 = time.perf_counter()
    r = evaluate(s, test, seeds=[seed], protocol=proto, device=device, curve=curve, compile=compile)
    suite_total = time.perf_counter() - t0
    run = r.runs[0]
    final = run.extra["curve"]["final_pass_seconds"]
    roof = None
    if with_roofline:   # one step's FLOPs and where its time goes, on a batch of the protocol's size
        model = create_model("convnet", tuple(test.shape), s.num_classes, **dict(proto.arch_kwargs)).to(device)
        b = min(proto.batch_size, x.shape[0])
        roof = roofline(model, x[:b], y[:b], run.train_seconds / run.steps)
        roof["reference_gflops"] = roof["step_gflop"] * ref["steps"] / ref["train_seconds"]
    return {"case": f"{dataset}:{ipc}", "roofline": roof, "precision": precision, "epochs": epochs, "checkpoints": checkpoints, "steps": run.steps,
            "reference": ref,
            "suite": {"train_seconds": run.train_seconds, "eval_seconds": run.eval_seconds,
                      "final_pass_seconds": final, "total_seconds": suite_total, "acc": run.final_acc, "curve": run.extra.get("curve"),
                      "compile": run.extra.get("compile")},
            "ratio_total": ref["total_seconds"] / suite_total,
            "ratio_per_step": (ref["train_seconds"] / ref["steps"]) / (run.train_seconds / run.steps),
            "curve_over_train": run.eval_seconds / run.train_seconds,
            "curve_over_train_without_final": (run.eval_seconds - final) / run.train_seconds,
            "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_features": cpu_features(),
            "allocator": {"suite": allocator_status(), "reference": "default (own process)" if reference_apart
                          else allocator_status()}}


def gpu_suite_case(dataset: str, ipc: int, epochs: int, ks, device, *, width: int | None = None,
                   reference_models: int = 1, curve: str = "screened", precision: str = "fp32",
                   compile: bool = False, checkpoints: int = 50, root=None):
    """Seconds per model with K seeds together, for each K, against the reference loop (one model at a
    time, the same augmentation and the same number of steps); yields one row per K."""
    train, test = load_dataset(dataset, "train", root=root), load_dataset(dataset, "test", root=root)
    s = create_condenser("random").condense(train, ipc, seed=0)
    proto = get_protocol("dc", "paper", epochs=epochs, checkpoints=checkpoints, precision=precision)
    kw = {**dict(proto.arch_kwargs), **({"width": width} if width else {})}
    x, y = s.instances()
    x, y = x.to(device), y.to(device)
    tx, ty = test.tensors(device)
    ref = []
    for seed in range(reference_models):
        torch.manual_seed(seed)
        model = dc_network(create_model("convnet", tuple(test.shape), s.num_classes, **kw)).to(device)
        ref.append(reference_loop(model, x, y, tx, ty, epochs, seed, aug=make_augment(proto, dataset)))
    ref_per_model = sum(r["total_seconds"] for r in ref) / len(ref)
    for k in ks:
        _sync(device)
        t0 = time.perf_counter()
        r = evaluate(s, test, seeds=list(range(k)), protocol=proto, device=device, curve=curve, compile=compile,
                     together=k, arch_kwargs={"width": width} if width else None)
        _sync(device)
        total = time.perf_counter() - t0
        run = r.runs[0]
        yield {"mode": "gpu-suite", "case": f"{dataset}:{ipc}", "k": k, "epochs": epochs, "augment": proto.augment,
               "precision": precision, "compile": run.extra.get("compile"), "together": run.extra.get("together", 1),
               "steps": run.steps, "width": kw.get("width"),
               "suite_seconds_per_model": total / k, "suite_train_seconds_per_model": run.train_seconds,
               "suite_curve_seconds_per_model": sum(x.eval_seconds for x in r.runs) / k,
               "reference_seconds_per_model": ref_per_model,
               "reference_train_seconds_per_model": sum(x["train_seconds"] for x in ref) / len(ref),
               "ratio": ref_per_model / (total / k), "goal_seconds_per_model": GOAL_SECONDS_PER_MODEL,
               "acc_mean": r.mean, "acc_std": r.std, "reference_acc": [x["acc"] for x in ref],
               "curve": run.extra.get("curve"), "device": str(device), "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else None,
               "threads": torch.get_num_threads()}


def run_gpu_suite(args, device) -> int:
    cases = args.cases if args.cases != list(DEFAULT_CASES) else ["cifar10:10"]
    epochs = args.epochs if args.epochs_given else 1000
    print(f"gpu suite: device={device} epochs={epochs} ks={args.ks} precision={args.precision} "
          f"compile={args.compile} (goal: {GOAL_SECONDS_PER_MODEL} s per model)")
    print(f"{'case':<12} {'K':>4} {'steps':>6} {'ref s/model':>11} {'suite s/model':>13} {'train s/model':>13} "
          f"{'ratio':>6} {'acc':>13}")
    for case in cases:
        dataset, _, ipc = case.partition(":")
        try:
            rows = gpu_suite_case(dataset, int(ipc or 10), epochs, args.ks, device, width=args.width,
                                  curve=args.curve, precision=args.precision, compile=args.compile,
                                  checkpoints=args.checkpoints)
            for row in rows:
                print(f"{case:<12} {row['k']:>4} {row['steps']:>6} {row['reference_seconds_per_model']:>11.3f} "
                      f"{row['suite_seconds_per_model']:>13.3f} {row['suite_train_seconds_per_model']:>13.3f} "
                      f"{row['ratio']:>6.2f} {row['acc_mean']:>6.2f} ± {row['acc_std']:<4.2f}", flush=True)
                if args.json:
                    jsonl.append(Path(args.json), row)
        except DatasetNotFoundError as e:
            print(f"{case:<12} skipped: {str(e).splitlines()[0][:100]}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="dataset:ipc pairs")
    ap.add_argument("--epochs", type=int, default=None, help="default 300 (1000 with --gpu-suite)")
    ap.add_argument("--checkpoints", type=int, default=50)
    ap.add_argument("--curve", choices=("screened", "full"), default="screened")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="the suite's training precision (the reference loop is always fp32)")
    ap.add_argument("--compile", nargs="?", const="on", default="off", choices=("off", "on", "auto"),
                    help="the suite trains through torch.compile: on, off, or auto (where it pays: "
                         "condense.engine.compile_pays)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each case this many times (reference, then suite) and print the median ratios: "
                         "on a shared host one run's ratio can move by 1.5x")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", help="append one JSON line per case to this file")
    ap.add_argument("--gpu-suite", action="store_true",
                    help="seconds per model with K seeds trained together (K = --ks), dc paper with DSA")
    ap.add_argument("--ks", type=int, nargs="+", default=list(GPU_SUITE_KS), help="--gpu-suite: seeds together")
    ap.add_argument("--width", type=int, default=None, help="--gpu-suite: ConvNet width (default 128; tiny CPU checks)")
    ap.add_argument("--allocator", choices=("as-is", "suite-heap"), default="suite-heap",
                    help="suite-heap (the suite's default): the suite keeps large blocks on the C heap, as python -m "
                         "condense and benchmarks.run do, and the reference loop runs in its own process with glibc's "
                         "allocator as it comes; as-is: both in this process, with the allocator as it comes")
    ap.add_argument("--no-roofline", action="store_true",
                    help="skip the per-case roofline (a step's FLOPs, GFLOP/s, the share outside convolutions)")
    args = ap.parse_args(argv)
    args.compile = {"off": False, "on": True, "auto": "auto"}[args.compile]
    args.epochs_given = args.epochs is not None
    args.epochs = args.epochs if args.epochs is not None else 300
    if args.epochs < 1 or args.repeat < 1 or any(k < 1 for k in args.ks) or (args.width is not None and args.width < 1):
        ap.error("--epochs, --repeat, --ks and --width must be positive")
    device = resolve_device(args.device)
    if args.allocator == "suite-heap":
        keep_freed_memory()
    if args.gpu_suite:
        return run_gpu_suite(args, device)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"cpu={platform.processor() or platform.machine()} features={cpu_features() or '?'} curve={args.curve} precision={args.precision} compile={args.compile}")
    graph_header = image_header = False
    for case in args.cases:
        dataset, _, ipc = case.partition(":")
        if dataset_kind(dataset) == "graphs":   # GCN and GIN against a plain PyG loop (benchmarks.bench_graphs)
            if not graph_header:
                print(bench_graphs.HEADER, flush=True)
                graph_header = True
            runs = []
            for r in range(args.repeat):
                try:
                    grows = bench_graphs.run_graph_case(dataset, int(ipc or 10), args.epochs if args.epochs_given else None)
                except DatasetNotFoundError as e:
                    print(f"{case:<16} skipped: {str(e).splitlines()[0][:100]}")
                    break
                bench_graphs.print_rows(grows)
                for row in grows:
                    row["repeat"] = r
                    runs.append(row)
                    if args.json:
                        jsonl.append(Path(args.json), row)
            if args.repeat > 1 and runs:
                bench_graphs.print_medians(runs)
            continue
        if not image_header:
            print(f"{'case':<12} {'steps':>6} {'ref train s':>11} {'ref total s':>11} {'suite train s':>13} "
                  f"{'curve s':>8} {'final s':>8} {'suite total s':>13} {'total ×':>8} {'per step ×':>10} {'curve/train':>11} "
                  f"{'w/o final':>9} "
                  f"{'ref acc':>7} {'suite acc':>9}")
            image_header = True
        rows = []
        for r in range(args.repeat):
            try:
                row = run_case(dataset, int(ipc or 10), args.epochs, args.checkpoints, args.curve, device,
                               precision=args.precision, compile=args.compile, with_roofline=not args.no_roofline,
                               reference_apart=args.allocator == "suite-heap")
            except DatasetNotFoundError as e:
                print(f"{case:<12} skipped: {str(e).splitlines()[0][:100]}")
                break
            row["repeat"] = r
            rows.append(row)
            ref, suite = row["reference"], row["suite"]
            print(f"{case:<12} {row['steps']:>6} {ref['train_seconds']:>11.1f} {ref['total_seconds']:>11.1f} "
                  f"{suite['train_seconds']:>13.1f} {suite['eval_seconds']:>8.1f} {suite['final_pass_seconds']:>8.1f} "
                  f"{suite['total_seconds']:>13.1f} {row['ratio_total']:>8.2f} {row['ratio_per_step']:>10.2f} "
                  f"{row['curve_over_train']:>11.2f} {row['curve_over_train_without_final']:>9.2f} "
                  f"{ref['acc']:>7.2f} {suite['acc']:>9.2f}", flush=True)
            if row["roofline"]:
                f = row["roofline"]
                print(f"{'  roofline':<12} {f['step_gflop']:.2f} GFLOP per step; suite {f['achieved_gflops']:.1f} "
                      f"GFLOP/s, reference {f['reference_gflops']:.1f} GFLOP/s; "
                      f"{100 * (f['outside_conv_fraction'] or 0):.0f} % of the step outside convolutions", flush=True)
            if args.json:
                jsonl.append(Path(args.json), row)
        if len(rows) > 1:
            print(f"{'  median':<12} {'':>6} {'':>11} {'':>11} {'':>13} {'':>8} {'':>8} {'':>13} "
                  + " ".join(f"{median(r[k] for r in rows):>{w}.2f}" for k, w in RATIO_COLUMNS), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
