"""Command line: ``python -m condense {datasets,condense,inspect,export,evaluate,import,verify}``.

Every user error (a bad file, a missing dataset, an unknown method) prints one line on stderr and
exits with status 1, without a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ._alloc import keep_freed_memory
from ._log import note, one_line
from ._paths import atomic_write
from .checks import parse_value
from .configs import dataset_config
from .data import IMAGE_DATASETS, KNOWN_TU, availability, dataset_kind, load_dataset
from .evaluate import check_source, evaluate, resolve_device
from .format import load, save
from .format.importers import cli as import_cli
from . import verify
from .methods import create_condenser
from .protocols import get_protocol


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------- datasets


def cmd_datasets(args) -> int:
    rows = [("dataset", "kind", "available", "train/val/test", "shape", "classes", "source")]
    for name in [*IMAGE_DATASETS, *KNOWN_TU]:
        kind = dataset_kind(name)
        av = availability(name, args.root)
        if not av["available"]:
            rows.append((name, kind, "no", "—", "—", "—", "missing"))
            continue
        try:
            splits = [load_dataset(name, s, root=args.root) for s in ("train", "val", "test")]
        except Exception as e:  # noqa: BLE001 - listed, never fatal
            rows.append((name, kind, "error", "—", "—", "—", str(e).splitlines()[0][:60]))
            continue
        tr = splits[0]
        shape = "x".join(map(str, tr.shape)) if kind == "images" else \
            f"{tr.num_node_features} node / {tr.num_edge_features} edge feats"
        rows.append((name, kind, "yes", "/".join(str(len(s)) for s in splits), shape, str(len(tr.classes)), tr.source))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


# ----------------------------------------------------------------------------- condense


def _overrides(items) -> dict:
    out = {}
    for item in items or []:
        k, eq, v = item.partition("=")
        if not eq or not k:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        out[k] = parse_value(v)
    return out


def cmd_condense(args) -> int:
    overrides = _overrides(args.set)
    condenser = create_condenser(args.method, args.preset, **overrides)
    device = resolve_device(args.device)
    default = Path(f"{args.dataset}-{args.method}-ipc{args.ipc}-s{args.seed}.h5")
    out = args.out or default
    if out.is_dir():  # like cp: a folder receives the default file name
        out = out / default
    train = load_dataset(args.dataset, "train", root=args.root)
    synset = condenser.condense(train, args.ipc, seed=args.seed, device=device, progress=True)
    save(synset, out)
    print(f"wrote {out}: {synset}, condensed in {synset.condense_seconds:.2f} s")
    return 0


# ----------------------------------------------------------------------------- inspect


def save_set(s, path: Path) -> None:
    """Save a set, and ``python -m condense inspect``'s output beside it (``PATH.inspect.txt``, which the
    leaderboard page links from the set's rows); a set that cannot be described is still saved."""
    save(s, path)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            cmd_inspect(argparse.Namespace(path=path))
    except USER_ERRORS + (RuntimeError,) as e:
        note(f"no inspect output for {path.name}: {one_line(e)}")
        return
    atomic_write(path.with_name(path.name + ".inspect.txt"), data=buf.getvalue().encode())


def _fmt_bytes(n: int) -> str:
    return f"{n:,} B" if n < 1024 else f"{n:,} B ({n / 1024:,.1f} KB)" if n < 1024 ** 2 else f"{n:,} B ({n / 1024 ** 2:,.2f} MB)"


def _class_pixel_stats(s, chunk: int = 4096) -> tuple[list[int], list[float], list[float]]:
    """Per class: image count, and mean and std of its standardized pixels, in one pass over the images
    in chunks (linear in images and classes; memory of one chunk)."""
    k = s.num_classes
    total, squares = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
    labels = s.labels.long()
    for i in range(0, len(labels), chunk):
        x = s.with_meta(images=s.images[i:i + chunk]).float_images().double().flatten(1)
        y = labels[i:i + chunk]
        total.index_add_(0, y, x.sum(1))
        squares.index_add_(0, y, (x * x).sum(1))
    counts = torch.bincount(labels, minlength=k)
    n = counts.double() * (s.images[0].numel() if len(labels) else 1)
    mean = total / n.clamp_min(1)
    var = (squares - n * mean * mean) / (n - 1).clamp_min(1)
    return counts.tolist(), mean.tolist(), var.clamp_min(0).sqrt().tolist()


def cmd_inspect(args) -> int:
    s = load(args.path)
    meta = s.metadata()
    print(f"{args.path}")
    for key in ("format", "format_version", "kind", "method", "ipc", "seed", "num_classes", "source_dataset",
                "source_split", "source_fingerprint", "created_utc", "library_version", "device",
                "condense_seconds", "teacher_seconds"):
        print(f"  {key:<20} {meta[key]}")
    print(f"  {'method_config':<20} {json.dumps(meta['method_config'], sort_keys=True)}")
    if s.release:   # an imported release (format version 4)
        r = s.release
        print(f"  release              {r['codebase']} ({r['kind']}), experiment {r['experiment']}, "
              f"{len(r['files'])} file record(s): " + ", ".join(f"{f['name']} {f['sha256'][:12]}…" for f in r["files"][:3]))
    if s.preprocessing.get("zca"):
        z = s.preprocessing["zca"]
        print(f"  preprocessing        ZCA eps {z['eps']:g} ({z['implementation']}, fitted on {z['fitted_on']}, "
              f"matrix {z['matrix_sha256'][:12]}…)")
    if s.synthetic_lr is not None:
        print(f"  synthetic_lr         {s.synthetic_lr:g} (the learned learning rate: --set lr=from-set)")
    if meta["deviations"]:
        print("  deviations:")
        for d in meta["deviations"]:
            print(f"    - {d}")
    print("  storage bytes:")
    for part, n in meta["storage_bytes"].items():
        print(f"    {part:<18} {_fmt_bytes(n)}")
    print(f"  file size            {_fmt_bytes(Path(args.path).stat().st_size)}")
    names = s.class_names
    if s.kind == "images":
        print(f"  images               {tuple(s.images.shape)} {s.images.dtype} ({s.image_encoding})")
        if s.compensators is not None:
            v = s.compensators["values"]
            print(f"  compensators         {tuple(v.shape)} {v.dtype} ({s.compensator_encoding}); "
                  f"{s.num_instances()} training instances")
        if s.soft_labels is not None:
            print(f"  soft labels          {tuple(s.soft_labels.shape)} {s.soft_labels.dtype} ({s.soft_label_policy})")
        if s.replay is not None:
            print(f"  replay views         {s.replay_epochs} epochs of {len(s)} views in batches of {s.replay_batch} "
                  "(crop, flip, CutMix; dataset(epoch=e))")
        print("  per class:            count   mean     std")
        counts, means, stds = _class_pixel_stats(s)
        for c in range(s.num_classes):
            stats = f"{means[c]:7.3f} {stds[c]:7.3f}" if counts[c] else "      —       —"
            print(f"    {c:>3} {names[c][:14]:<14} {counts[c]:6d} {stats}")
    elif s.kind == "subset-schedule":
        r, n = s.indices.shape
        uniq = torch.unique(s.indices).numel()
        print(f"  schedule             {r} rounds × {n} indices into {s.source_dataset}/{s.source_split} "
              f"({s.source_size} items); {uniq} distinct ({100 * uniq / s.source_size:.1f} % of the source)")
    else:
        g = s.graphs
        sizes = (g["node_ptr"][1:] - g["node_ptr"][:-1]).float()
        print(f"  graphs               {len(s)} graphs, {int(g['node_ptr'][-1])} nodes, {int(g['edge_ptr'][-1])} edges, "
              f"mean {float(sizes.mean()):.1f} nodes/graph" + (", root-pooled" if "root_mask" in g else ""))
        print("  per class:            graphs  nodes")
        labels = g["labels"].long()
        counts = torch.bincount(labels, minlength=s.num_classes).tolist()
        nodes = torch.bincount(labels, weights=sizes.double(), minlength=s.num_classes).long().tolist()
        for c in range(s.num_classes):
            print(f"    {c:>3} {names[c][:14]:<14} {counts[c]:6d} {nodes[c]:6d}")
    return 0


# ----------------------------------------------------------------------------- export


MAX_SCALE = 64
MAX_PNG_PIXELS = 100_000_000


def cmd_export(args) -> int:
    if not 1 <= args.scale <= MAX_SCALE:
        return _err(f"--scale must be an integer in [1, {MAX_SCALE}], got {args.scale}")
    if not 1 <= args.max_per_class <= 1000:
        return _err(f"--max-per-class must be an integer in [1, 1000], got {args.max_per_class}")
    out = Path(args.png)
    if out.exists() and not out.is_dir():
        return _err(f"--png {out}: exists and is not a folder; give a folder for the PNG files")
    s = load(args.path)
    if s.kind != "images":
        return _err(f"{args.path}: export --png applies to image sets, this one is {s.kind!r}")
    c, h, w = s.images.shape[1:]
    pixels = s.num_classes * (h + 1) * args.max_per_class * (w + 1) * args.scale ** 2
    if pixels > MAX_PNG_PIXELS:
        return _err(f"{args.path}: the grid would be {pixels:,} pixels (over {MAX_PNG_PIXELS:,}); "
                    "lower --scale or --max-per-class")
    out.mkdir(parents=True, exist_ok=True)
    pix = _to_unit(s)
    grid = _grid(pix, s.labels, s.num_classes, args.max_per_class)
    _save_png(grid, out / "grid.png", scale=args.scale)
    n = 1
    if s.compensators is not None:  # INFER: the composed training instances, and the UFCs themselves
        x, y = s.instances()
        mean, std = torch.tensor(s.mean).view(1, -1, 1, 1), torch.tensor(s.std).view(1, -1, 1, 1)
        inst = (x * std + mean).clamp(0, 1)
        _save_png(_grid(inst, y, s.num_classes, args.max_per_class), out / "instances.png", scale=args.scale)
        u = s.compensator_values()
        lo, hi = u.amin(dim=(1, 2, 3), keepdim=True), u.amax(dim=(1, 2, 3), keepdim=True)
        shown = (u - lo) / (hi - lo).clamp_min(1e-12)  # each UFC stretched to [0, 1] to be visible
        teacher = s.compensators.get("teacher", torch.zeros(len(u), dtype=torch.long)).long()
        _save_png(_grid(shown, teacher, int(teacher.max()) + 1, args.max_per_class), out / "compensators.png",
                  scale=args.scale)
        n += 2
    if args.files:
        seen: Counter = Counter()
        for i in range(pix.shape[0]):
            c = int(s.labels[i])
            _save_png(pix[i], out / f"class{c:03d}_{seen[c]:04d}.png", scale=1)
            seen[c] += 1
            n += 1
    extra = "; instances.png: composed instances; compensators.png: one row per teacher" \
        if s.compensators is not None else ""
    print(f"wrote {n} PNG file(s) to {out} (grid.png: one row per class{extra})")
    return 0


def _to_unit(s):
    """Images in [0, 1] for viewing (standardized ones are un-standardized, then clamped)."""
    if s.image_encoding == "uint8":
        return s.images.float() / 255.0
    x = s.images.float()
    if s.image_encoding == "standardized":
        x = x * torch.tensor(s.std).view(1, -1, 1, 1) + torch.tensor(s.mean).view(1, -1, 1, 1)
    return x.clamp(0, 1)


def _grid(pix, labels, num_classes: int, max_per_class: int):
    c, h, w = pix.shape[1:]
    cols = max(1, min(max_per_class, max(int((labels == k).sum()) for k in range(num_classes))))
    pad = 1
    grid = torch.ones(c, num_classes * (h + pad) + pad, cols * (w + pad) + pad)
    for k in range(num_classes):
        idx = torch.nonzero(labels == k).view(-1)[:cols]
        for j, i in enumerate(idx.tolist()):
            y0, x0 = pad + k * (h + pad), pad + j * (w + pad)
            grid[:, y0:y0 + h, x0:x0 + w] = pix[i]
    return grid


def _save_png(img, path: Path, scale: int = 1) -> None:
    from PIL import Image  # only `export` writes image files

    a = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    a = a[..., 0] if a.shape[2] == 1 else a
    im = Image.fromarray(np.ascontiguousarray(a))
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    im.save(path)


# ----------------------------------------------------------------------------- evaluate


def cmd_evaluate(args) -> int:
    s = load(args.path)
    kind = "graphs" if s.kind == "graphs" else "images"
    train = load_dataset(s.source_dataset, "train", root=args.root)
    mismatch = check_source(s, train, args.accept_other_source)
    if mismatch:
        print(f"note: {s.source_dataset}/train here has fingerprint {mismatch['local']}, the set's source "
              f"{mismatch['set']}; evaluated anyway (--accept-other-source)", file=sys.stderr)
    test = load_dataset(s.source_dataset, "test", root=args.root)
    cfg = dataset_config(s.source_dataset, kind)
    arch = args.arch or cfg.archs[0]
    protocol = get_protocol(args.protocol or cfg.protocol, args.preset, **_overrides(args.set))
    res = evaluate(s, test, arch=arch, protocol=protocol, seeds=args.seeds,
                   device=args.device, preset=args.preset, progress=True, root=args.root,
                   source=train, accept_other_source=args.accept_other_source)
    print(res)
    for t, v in res.tta_summary().items():
        shown = f"{v['mean']:.1f} s" if v["mean"] is not None else f"not reached ({v['reached']}/{v['n']} seeds)"
        print(f"  TTA@{t}%: {shown}")
    print(f"  train seconds per seed: {', '.join(f'{r.train_seconds:.1f}' for r in res.runs)}")
    if args.json:
        out = {**res.to_dict(), **({"accepted_other_source": mismatch} if mismatch else {})}
        atomic_write(args.json, data=json.dumps(out, indent=1).encode())
    return 0


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m condense", description="condense: dataset condensation benchmark")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("datasets", help="list datasets with availability, sizes and source")
    p.add_argument("--root", default=None)
    p.set_defaults(fn=cmd_datasets)

    p = sub.add_parser("condense", help="condense a dataset into an .h5 synthetic set")
    p.add_argument("method")
    p.add_argument("dataset")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=("quick", "paper"), default="quick")
    p.add_argument("--device", default="auto")
    p.add_argument("--root", default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field")
    p.set_defaults(fn=cmd_condense)

    p = sub.add_parser("inspect", help="print a set's metadata, storage bytes and per-class summary")
    p.add_argument("path", type=Path)
    p.set_defaults(fn=cmd_inspect)

    p = sub.add_parser("export", help="write a set's images as PNG (a grid, optionally every file)")
    p.add_argument("path", type=Path)
    p.add_argument("--png", required=True, type=Path, metavar="DIR")
    p.add_argument("--files", action="store_true", help="also one PNG per image")
    p.add_argument("--max-per-class", type=int, default=20)
    p.add_argument("--scale", type=int, default=4, help="grid upscaling factor")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("evaluate", help="train fixed architectures on a set and report accuracy and TTA")
    p.add_argument("path", type=Path)
    p.add_argument("--arch", default=None)
    p.add_argument("--protocol", default=None)
    p.add_argument("--preset", choices=("quick", "paper"), default="quick")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default="auto")
    p.add_argument("--root", default=None)
    p.add_argument("--json", default=None, help="also write the full result as JSON")
    p.add_argument("--accept-other-source", action="store_true",
                   help="evaluate a set whose source fingerprint differs from the local copy of its dataset "
                        "(recorded in --json as accepted_other_source)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a protocol field, e.g. lr=from-set (a set's learned learning rate)")
    p.set_defaults(fn=cmd_evaluate)
    import_cli.add_parser(sub)
    verify.add_parser(sub)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        return args.fn(args)
    except BrokenPipeError:  # `inspect ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except USER_ERRORS as e:
        return _err(one_line(e))


USER_ERRORS = (ValueError, OSError)  # FormatError, DatasetError, DatasetNotFoundError, CacheError among them


if __name__ == "__main__":
    sys.exit(main())
