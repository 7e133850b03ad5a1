"""Write a set's images as an image-folder release, as SRe2L, RDED and CV-DD publish theirs: one
sub-folder per class (named by the class), one PNG per image. With ``python -m condense import folder``
it checks the ``folder`` importer end to end on real images (``results/imported/README.md``).

    python -m benchmarks.release_folder SET.h5 DIR
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from condense._log import one_line
from condense.format import load


def write_folder(set_path: Path, out: Path) -> int:
    """One PNG per image of a ``uint8`` image set under ``out/<class name>/``; returns the count."""
    from PIL import Image  # PNG writing only here

    s = load(set_path)
    if s.kind != "images" or s.image_encoding != "uint8":
        raise ValueError(f"{set_path}: an image-folder release holds pixels; this set is {s.kind}/{s.image_encoding}")
    pix = s.images.numpy()
    for i, c in enumerate(s.labels.tolist()):
        folder = out / s.class_names[c]
        folder.mkdir(parents=True, exist_ok=True)
        a = pix[i].transpose(1, 2, 0)
        Image.fromarray(a[..., 0] if a.shape[2] == 1 else np.ascontiguousarray(a)).save(folder / f"{i:05d}.png")
    return len(pix)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.release_folder", description=__doc__.split("\n\n")[0])
    ap.add_argument("set", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    try:
        n = write_folder(args.set, args.out)
    except (ValueError, OSError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    print(f"wrote {n} PNG files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
