"""``python -m condense import KIND PATH --dataset NAME --out X.h5``: the command line of the importers."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import IMPORTERS, OPTIONS, import_to


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("import", help="turn a released synthetic set (dc, mtt, folder) into a checked .h5 set")
    p.add_argument("kind", choices=tuple(IMPORTERS), help="the release layout: dc, mtt or folder (docs/importing.md)")
    p.add_argument("path", type=Path, help="the release: a res_*.pt file (dc) or a folder (mtt, folder)")
    p.add_argument("--dataset", required=True, help="the suite's name of its source dataset, e.g. cifar10")
    p.add_argument("--out", type=Path, required=True, help="the .h5 to write (a dc file of K experiments: X-exp0.h5 …)")
    p.add_argument("--name", default=None, help="the leaderboard row: imported:KIND:NAME (default from the file)")
    p.add_argument("--experiment", type=int, default=None, help="dc: import experiment K only")
    p.add_argument("--mean", type=float, nargs="+", default=None, help="dc, mtt: the Normalize mean it was saved with")
    p.add_argument("--std", type=float, nargs="+", default=None, help="dc, mtt: the Normalize std it was saved with")
    p.add_argument("--zca", action="store_true", help="mtt: the images are ZCA-whitened (MTT's --zca)")
    p.add_argument("--zca-eps", type=float, default=0.1, help="mtt: the ZCA eps (MTT: 0.1)")
    p.add_argument("--iteration", type=int, default=None, help="mtt: images_K.pt instead of images_best.pt")
    p.add_argument("--shards", action="store_true", help="mtt: join images_0.pt, images_1.pt, … in order")
    p.add_argument("--relabel", type=Path, default=None, help="folder: an FKD relabel folder (epoch_*/batch_*.tar)")
    p.add_argument("--fkd-seed", type=int, default=42, help="folder: the relabel's sampler seed (FKD: 42)")
    p.add_argument("--root", default=None)
    p.set_defaults(fn=run)
    return p


def run(args) -> int:
    opts = {k: getattr(args, k) for k in OPTIONS}
    if (args.mean is None) != (args.std is None):
        raise ValueError("--mean and --std go together")
    for path in import_to(args.kind, args.path, args.dataset, args.out, name=args.name, root=args.root, **opts):
        print(f"wrote {path}")
    return 0
