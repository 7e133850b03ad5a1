"""How often a screened curve places a checkpoint that reached its target below it, and how often a
replayed run's time-to-accuracy differs from the exhaustive curve's (``docs/protocols.md``).

Two measurements of :class:`condense.curves.Curve` as it runs, each over many random test orders:

- ``boundary``: a checkpoint whose full-set accuracy is exactly its target, screened once per random
  order of a 10,000-image test set, in the boundary cases where a screen is most tempted to place it
  below (no anchor at 30 / 50 / 90 %; every change from a 14 % anchor a gain; a 91 % anchor under a
  95 % target with the 400 gains it needs). Prints the share of orders that placed it below: the
  screen promises at most its ``level`` (0.1 %).
- ``replay``: the recorded runs of ``tests/data`` replayed under other test orders (the seed of
  :func:`condense.curves.stratified_order`), live and deferred; prints in how many orders a target's
  crossing step differs from the exhaustive curve's, and the images read.

    python -m benchmarks.screen_level boundary --orders 20000
    python -m benchmarks.screen_level replay --orders 200
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.record_curve import load_record, replay
from condense.curves import Curve, CurvePolicy
from condense.evaluate import time_to_accuracy

N = 10_000
DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
RECORDS = {"mnist-ipc10": DATA / "curve-mnist-ipc10.npz", "cifar10-ipc1": DATA / "curve-cifar10-ipc1.npz"}
SIX_TARGETS = (85.0, 88.0, 90.0, 91.0, 92.0, 95.0)


def boundary_cases() -> dict[str, tuple[float, torch.Tensor | None, torch.Tensor]]:
    """name -> (target, anchor correctness or None, checkpoint correctness) over ``N`` test images; the
    checkpoint's accuracy is exactly the target."""
    def first(k):
        c = torch.zeros(N, dtype=torch.bool)
        c[:k] = True
        return c

    cases = {f"no anchor, at {p} %": (float(p), None, first(p * N // 100)) for p in (30, 50, 90)}
    cases["anchor 14 %, at 30 %, every change a gain"] = (30.0, first(1400), first(3000))
    cases["anchor 91 %, at 95 %, 400 gains"] = (95.0, ~first(900), ~first(500))
    return cases


def _curve(target: float, policy, curve_cls):
    class Fixed(curve_cls or Curve):
        """A curve whose 'model' is the checkpoint's correctness over the test images."""

        def screen_correct(self, c, lo, hi):
            return c[self.sx[lo:hi]]

        def correct_at(self, c, positions):
            return c[self.sx[positions]]

        def full_correct(self, c):
            return c[self.sx]

        def rest_correct(self, c, lo):
            return c[self.sx[lo:]]

    return Fixed((torch.arange(N), torch.zeros(N, dtype=torch.long)), (target,), policy)


def placed_below(case, orders: int, first_read: int | None = None, policy=None, seed: int = 0,
                 curve_cls=None) -> int:
    """In how many of ``orders`` random test orders a screen places the case's checkpoint (exactly at
    its target) below the target; ``first_read``: the images the screen reads first (the policy's
    ``subset`` when None, as at a run's first checkpoint; ``small_read`` after a placed checkpoint)."""
    target, anchor, c = case
    curve = _curve(target, policy or CurvePolicy(defer=False), curve_cls)
    g = torch.Generator().manual_seed(seed)
    acc0 = None if anchor is None else 100.0 * float(anchor.float().mean())
    placed = 0
    for _ in range(orders):
        order = torch.randperm(N, generator=g)
        curve.sx = order
        curve.first_read = first_read or curve.policy.subset
        curve._wrong = None
        curve.anchor = None if anchor is None else (acc0, anchor[order])
        placed += bool(curve.screen(c)[2])
    return placed


def replay_differences(name: str, orders: int, targets=None, defer: bool = False, first_seed: int = 1,
                       policy_kw: dict | None = None) -> dict:
    """The recorded run ``name`` replayed under test orders ``first_seed, first_seed + 1, ...``: how many
    orders moved some target's crossing step, the orders and targets concerned, and the mean images
    read (screened + full passes - reused) against the exhaustive curve's."""
    rec = load_record(RECORDS[name])
    targets = tuple(rec["targets"].tolist()) if targets is None else tuple(targets)
    n = int(rec["n"])
    full = replay(rec, CurvePolicy(method="full"), targets)
    want = {t: time_to_accuracy(full.points, t, clock="step") for t in targets}
    moved, read = [], []
    for seed in range(first_seed, first_seed + orders):
        curve = replay(rec, CurvePolicy(defer=defer, **(policy_kw or {})), targets, order_seed=seed)
        got = {t: time_to_accuracy(curve.points, t, clock="step") for t in targets}
        moved += [(seed, t, want[t], got[t]) for t in targets if got[t] != want[t]]
        read.append(curve.screened_images + curve.full_points * n - curve.reused_images)
    return {"record": name, "targets": targets, "defer": defer, "orders": orders,
            "orders_moved": len({m[0] for m in moved}), "moved": moved,
            "images_read": float(np.mean(read)), "exhaustive_images": len(rec["step"]) * n}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("boundary", "replay"))
    ap.add_argument("--orders", type=int, default=None, help="random test orders per case (20,000 / 200)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.what == "boundary":
        orders = args.orders or 20_000
        print(f"{'case':<44} {'first read':>10} {'placed below':>13} {'rate %':>7}")
        for name, case in boundary_cases().items():
            for first_read in (None, 64):
                k = placed_below(case, orders, first_read)
                label = "subset" if first_read is None else str(first_read)
                print(f"{name:<44} {label:>10} {k:>7}/{orders} {100 * k / orders:>7.3f}", flush=True)
    else:
        orders = args.orders or 200
        print(f"{'record':<14} {'targets':<32} {'curve':<9} {'orders moved':>13} {'images read':>12} {'exhaustive':>11}")
        for name in RECORDS:
            for targets in (None, SIX_TARGETS):
                for defer in (False, True):
                    r = replay_differences(name, orders, targets, defer)
                    label = " ".join(f"{t:g}" for t in r["targets"])
                    print(f"{name:<14} {label:<32} {'deferred' if defer else 'live':<9} "
                          f"{r['orders_moved']:>6}/{orders:<6} {r['images_read']:>12,.0f} {r['exhaustive_images']:>11,}",
                          flush=True)
                    for seed, t, a, b in r["moved"]:
                        print(f"    order {seed}: TTA@{t:g} at step {b} instead of {a}")
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
