"""Record a run's per-image test correctness at every checkpoint, in fp32 and in bfloat16.

The record is what a screened curve is checked and tuned against without training again
(``tests/test_engine.py`` replays :class:`condense.curves.Curve` on it and compares its
time-to-accuracy with the exhaustive curve's): for each of the protocol's checkpoints, which test
images the model classifies correctly on the full test set in fp32 (the exhaustive curve) and under
bfloat16 autocast (what screening reads), bit-packed, with the test labels and the targets.

    python -m benchmarks.record_curve --case mnist:10 --out tests/data/curve-mnist-ipc10.npz
    python -m benchmarks.record_curve --case cifar10:1 --out tests/data/curve-cifar10-ipc1.npz
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import condense.evaluate as ev
import condense.image_train as trainer
from condense._paths import atomic_write
from condense.configs import dataset_config
from condense.curves import Curve, CurvePolicy, correct, stratified_order
from condense.data import load_dataset
from condense.methods import create_condenser
from condense.protocols import get_protocol


def record(dataset: str, ipc: int, epochs: int, checkpoints: int, precision: str, seed: int = 0) -> dict:
    train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
    s = create_condenser("random").condense(train, ipc, seed=seed)
    proto = get_protocol("dc", "quick", epochs=epochs, checkpoints=checkpoints, precision=precision)
    rows = {"fp32": [], "bf16": [], "step": [], "train_seconds": []}

    class Recording(Curve):
        def record(self, model, last: bool) -> dict:
            rows["fp32"].append(np.packbits(correct(model, self.x, self.y, dtype="float32").cpu().numpy()))
            rows["bf16"].append(np.packbits(correct(model, self.x, self.y, dtype="bfloat16").cpu().numpy()))
            return super().record(model, last)

    trainer.Curve = Recording
    try:
        t0 = time.perf_counter()
        r = ev.evaluate(s, test, seeds=[seed], protocol=proto, curve=CurvePolicy(method="full"))
    finally:
        trainer.Curve = Curve
    run = r.runs[0]
    _, ty = test.tensors("cpu")
    print(f"{dataset}:{ipc} final {run.final_acc:.2f} % after {run.steps} steps, {time.perf_counter() - t0:.0f} s")
    return {"fp32": np.stack(rows["fp32"]), "bf16": np.stack(rows["bf16"]), "y": ty.numpy().astype(np.int16),
            "step": np.array([p["step"] for p in run.curve]),
            "train_seconds": np.array([p["train_seconds"] for p in run.curve]),
            "targets": np.array(dataset_config(dataset).targets), "n": np.array(ty.numel()),
            "case": np.array(f"{dataset}:{ipc} dc quick {precision} epochs={epochs} seed={seed}")}


def load_record(path) -> dict:
    """A record as written by :func:`record`, correctness unpacked to bool tensors (checkpoints × n)."""
    with np.load(path) as f:
        r = {k: f[k] for k in f.files}
    n = int(r["n"])
    for k in ("fp32", "bf16"):
        r[k] = torch.from_numpy(np.unpackbits(r[k], axis=1)[:, :n].astype(bool))
    r["y"] = torch.from_numpy(r["y"].astype(np.int64))
    return r


def replay(rec: dict, policy, targets=None, order_seed: int = 0):
    """Run :class:`condense.curves.Curve` over a record: each checkpoint's evaluations read the recorded
    correctness instead of a model. ``order_seed``: the seed of the screening order (the suite's runs
    use 0; other seeds replay the run under other test orders). Returns the curve (its ``points`` and
    counters)."""
    class Replayed(Curve):
        def screen_correct(self, i, lo, hi):
            return rec["bf16" if self.screen_dtype == "bfloat16" else "fp32"][i][self.sx[lo:hi]]

        def correct_at(self, i, positions):
            return rec["bf16" if self.screen_dtype == "bfloat16" else "fp32"][i][self.sx[positions]]

        def full_correct(self, i):
            return rec["fp32"][i][self.sx if self.screening else self.x]

        def rest_correct(self, i, lo):
            return rec["fp32"][i][self.sx[lo:]]

    y = rec["y"]
    curve = Replayed((torch.arange(y.numel()), y), tuple(rec["targets"]) if targets is None else targets, policy)
    if order_seed and curve.screening:
        order = stratified_order(y, order_seed)
        curve.sx, curve.sy = curve.x[order], y[order]
    last = len(rec["step"]) - 1
    for i, step in enumerate(rec["step"].tolist()):
        curve.add(i, {"step": step, "train_seconds": float(rec["train_seconds"][i])}, last=i == last)
    return curve


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="mnist:10", help="dataset:ipc (a random set of that size)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--checkpoints", type=int, default=50)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    dataset, _, ipc = args.case.partition(":")
    arrays = record(dataset, int(ipc or 10), args.epochs, args.checkpoints, args.precision)
    atomic_write(args.out, lambda f: np.savez_compressed(f, **arrays))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
