"""Cases for the importers (``python -m condense import``): releases that would run code, disagree with
their dataset, hold NaN pixels, miss a class, mix image sizes, carry relabel files for other images,
or a ZCA set evaluated beside another transform. Each is one line, and nothing is written."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .forgers import marker_pickle
from .model import Invocation, _cli, case


def _digits():
    from condense.data import load_dataset

    return load_dataset("digits", "train")


def _dc_file(d: Path, images=None, labels=None) -> Path:
    import torch

    tr = _digits()
    idx = torch.cat([torch.nonzero(tr.labels == c).flatten()[:2] for c in range(10)])
    x = tr.normalize(tr.images[idx]) if images is None else images
    y = tr.labels[idx] if labels is None else labels
    path = d / "res_DM_digits_ConvNet_2ipc.pt"
    torch.save({"data": [[x, y]], "accs_all_exps": {"ConvNet": [np.float64(0.5)]}}, path)
    return path


def _nothing_written(out: Path):
    return lambda: f"{out} was written" if any(out.parent.glob(out.stem + "*")) else None


def _dc_case(d: Path, path: Path) -> Invocation:
    out = d / "out" / "imported.h5"
    return Invocation(_cli("import", "dc", path, "--dataset", "digits", "--out", out, "--mean", 0.3, "--std", 0.3),
                      check=_nothing_written(out))


@case("import-dc-pickle-payload")
def import_dc_pickle(d: Path) -> Invocation:
    marker = d / "PAYLOAD-RAN"
    path = d / "res_DM_digits_ConvNet_2ipc.pt"
    marker_pickle(path, marker)
    inv = _dc_case(d, path)
    written = inv.check
    inv.check = lambda: "the planted pickle ran" if marker.exists() else written()
    return inv


@case("import-dc-wrong-shape")
def import_dc_wrong_shape(d: Path) -> Invocation:
    import torch

    return _dc_case(d, _dc_file(d, images=torch.zeros(20, 3, 8, 8)))


@case("import-dc-labels-out-of-range")
def import_dc_labels(d: Path) -> Invocation:
    import torch

    return _dc_case(d, _dc_file(d, labels=torch.full((20,), 10)))


@case("import-dc-nan-pixels")
def import_dc_nan(d: Path) -> Invocation:
    import torch

    x = torch.zeros(20, 1, 8, 8)
    x[3, 0, 2, 2] = float("nan")
    return _dc_case(d, _dc_file(d, images=x))


def _folder(d: Path, classes: int = 10, odd_size: bool = False) -> Path:
    from PIL import Image

    root = d / "release"
    for c in range(classes):
        (root / f"new{c:03d}").mkdir(parents=True)
        for i in range(2):
            size = 9 if odd_size and c == 4 and i == 1 else 8
            Image.fromarray(np.full((size, size), 16 * c + i, np.uint8)).save(root / f"new{c:03d}" / f"{i}.png")
    return root


def _folder_case(d: Path, root: Path, *extra) -> Invocation:
    out = d / "out" / "imported.h5"
    return Invocation(_cli("import", "folder", root, "--dataset", "digits", "--out", out, *extra),
                      check=_nothing_written(out))


@case("import-folder-missing-class")
def import_folder_missing_class(d: Path) -> Invocation:
    return _folder_case(d, _folder(d, classes=9))


@case("import-folder-mixed-sizes")
def import_folder_mixed_sizes(d: Path) -> Invocation:
    return _folder_case(d, _folder(d, odd_size=True))


@case("import-folder-relabel-for-other-images")
def import_relabel_other(d: Path) -> Invocation:
    import torch

    root, relabel = _folder(d), d / "relabel" / "epoch_0"
    relabel.mkdir(parents=True)
    for b in range(3):   # 3 batches of 8 views: 24 views for a 20-image set
        torch.save([torch.rand(8, 4) * 0.5, torch.zeros(8, dtype=torch.bool), torch.randperm(8), np.float64(0.5),
                    [np.int64(0), np.int64(0), np.int64(4), np.int64(4)], torch.randn(8, 10)], relabel / f"batch_{b}.tar")
    return _folder_case(d, root, "--relabel", d / "relabel")


@case("import-zca-set-other-transform")
def import_zca_other(d: Path) -> Invocation:
    """A ZCA set whose recorded transform is not the one fitted here (as if fitted on another copy of the
    data, or edited): evaluation refuses it."""
    import json

    import h5py
    import torch

    import condense
    from condense.format import reseal
    from condense.format.importers import import_release
    from condense.zca import fit_zca, pixels

    tr = _digits()
    idx = torch.cat([torch.nonzero(tr.labels == c).flatten()[:2] for c in range(10)])
    rel = d / "mtt"
    rel.mkdir()
    torch.save(fit_zca("digits", 0.1)(pixels(tr.images[idx], (), (), False)), rel / "images_best.pt")
    torch.save(tr.labels[idx].clone(), rel / "labels_best.pt")
    (s,) = import_release("mtt", rel, "digits", zca=True)
    path = condense.save(s, d / "zca.h5")
    with h5py.File(path, "r+") as f:
        pre = json.loads(f.attrs["preprocessing"])
        pre["zca"]["matrix_sha256"] = "0" * 64
        pre["zca"]["probe"] = [v * 1.01 for v in pre["zca"]["probe"]]
        f.attrs["preprocessing"] = json.dumps(pre)
    reseal(path)
    return Invocation(_cli("evaluate", path, "--seeds", "0", "--set", "epochs=1"))
