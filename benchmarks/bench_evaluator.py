"""The suite's evaluator side by side with a DC-style reference loop, in one process.

The reference is how Dataset Condensation's code evaluates a set: one model at a time, plain
PyTorch, SGD (lr 0.01, momentum 0.9, weight decay 5e-4), batch 256, E+1 passes with the rate ×0.1
and a fresh optimizer after pass E//2+1, and one test pass at the end. The suite trains the same
set under the same protocol (``dc`` quick: ConvNet-3, 300 epochs) with its full 50-point
test-accuracy curve. Two ratios, reference ÷ suite:

- ``total``: wall seconds of the whole evaluation (the suite with its curve, the reference with its
  single test pass);
- ``per step``: training seconds per optimizer step.

Cases: CIFAR-10 at IPC 1, 10 and 50 and MNIST at IPC 10 (real data under ``CONDENSE_DATA``; a case
whose dataset is missing is skipped with the reason), or any ``--cases dataset:ipc``.

    python -m benchmarks.bench_evaluator [--cases cifar10:10 mnist:10] [--epochs 300] [--curve screened]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

DEFAULT_CASES = ("cifar10:1", "cifar10:10", "cifar10:50", "mnist:10")


def reference_loop(model, x, y, test_x, test_y, epochs: int, seed: int, batch_size: int = 256) -> dict:
    """DC's evaluation loop, written plainly: the baseline every speedup is measured against."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    steps, t0 = 0, time.perf_counter()
    model.train()
    for epoch in range(epochs + 1):
        if epoch == epochs // 2 + 2:
            opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
        for idx in torch.randperm(x.shape[0], generator=g).split(batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    train = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(test_x[i:i + 256]).argmax(1) == test_y[i:i + 256]).sum())
                      for i in range(0, test_x.shape[0], 256))
    return {"train_seconds": train, "total_seconds": time.perf_counter() - t0, "steps": steps,
            "acc": 100.0 * correct / test_x.shape[0]}


def run_case(dataset: str, ipc: int, epochs: int, checkpoints: int, curve: str, device, seed: int = 0,
             root=None, precision: str = "fp32", compile: bool = False) -> dict:
    from condense.evaluate import evaluate
    from condense.data import load_dataset
    from condense.methods import create_condenser
    from condense.models import create_model
    from condense.protocols import get_protocol

    train, test = load_dataset(dataset, "train", root=root), load_dataset(dataset, "test", root=root)
    s = create_condenser("random").condense(train, ipc, seed=seed)
    proto = get_protocol("dc", "quick", epochs=epochs, checkpoints=checkpoints, precision=precision)
    x, y = s.instances()
    x, y = x.to(device), y.to(device)
    tx, ty = test.tensors(device)
    torch.manual_seed(seed)
    model = create_model("convnet", tuple(test.shape), s.num_classes, **dict(proto.arch_kwargs)).to(device)
    ref = reference_loop(model, x, y, tx, ty, epochs, seed)
    t0 = time.perf_counter()
    r = evaluate(s, test, seeds=[seed], protocol=proto, device=device, curve=curve, compile=compile)
    suite_total = time.perf_counter() - t0
    run = r.runs[0]
    return {"case": f"{dataset}:{ipc}", "precision": precision, "epochs": epochs, "checkpoints": checkpoints, "steps": run.steps,
            "reference": ref,
            "suite": {"train_seconds": run.train_seconds, "eval_seconds": run.eval_seconds,
                      "total_seconds": suite_total, "acc": run.final_acc, "curve": run.extra.get("curve"),
                      "compile": run.extra.get("compile")},
            "ratio_total": ref["total_seconds"] / suite_total,
            "ratio_per_step": (ref["train_seconds"] / ref["steps"]) / (run.train_seconds / run.steps),
            "curve_over_train": run.eval_seconds / run.train_seconds,
            "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine()}


def main(argv=None) -> int:
    from condense.data import DatasetNotFoundError
    from condense.evaluate import resolve_device

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="dataset:ipc pairs")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--checkpoints", type=int, default=50)
    ap.add_argument("--curve", choices=("screened", "full"), default="screened")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="the suite's training precision (the reference loop is always fp32)")
    ap.add_argument("--compile", action="store_true", help="the suite trains through torch.compile")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", help="append one JSON line per case to this file")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"cpu={platform.processor() or platform.machine()} curve={args.curve} precision={args.precision} compile={args.compile}")
    print(f"{'case':<12} {'steps':>6} {'ref train s':>11} {'ref total s':>11} {'suite train s':>13} "
          f"{'curve s':>8} {'suite total s':>13} {'total ×':>8} {'per step ×':>10} {'curve/train':>11} "
          f"{'ref acc':>7} {'suite acc':>9}")
    for case in args.cases:
        dataset, _, ipc = case.partition(":")
        try:
            row = run_case(dataset, int(ipc or 10), args.epochs, args.checkpoints, args.curve, device,
                           precision=args.precision, compile=args.compile)
        except DatasetNotFoundError as e:
            print(f"{case:<12} skipped: {str(e).splitlines()[0][:100]}")
            continue
        ref, suite = row["reference"], row["suite"]
        print(f"{case:<12} {row['steps']:>6} {ref['train_seconds']:>11.1f} {ref['total_seconds']:>11.1f} "
              f"{suite['train_seconds']:>13.1f} {suite['eval_seconds']:>8.1f} {suite['total_seconds']:>13.1f} "
              f"{row['ratio_total']:>8.2f} {row['ratio_per_step']:>10.2f} {row['curve_over_train']:>11.2f} "
              f"{ref['acc']:>7.2f} {suite['acc']:>9.2f}", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
