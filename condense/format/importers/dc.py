"""Importer ``dc``: the DC / DSA / DM codebase (VICO-UoE/DatasetCondensation).

``main.py`` saves ``res_<method>_<dataset>_<model>_<ipc>ipc.pt`` with ``torch.save({'data': [[images,
labels], ...], 'accs_all_exps': {...}})``: one ``[images, labels]`` pair per experiment, images in the
model-input space of that codebase's ``get_dataset`` (``Normalize(mean, std)`` with its per-dataset
constants, e.g. CIFAR-10 mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010)). Learned pixels
leave [0, 1], so they are kept as ``model-input`` floats beside those constants, and the evaluator
standardizes the test images with the same constants.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..spec import FormatError
from ._common import as_tensor, build, check_images, check_labels, file_record, load_pt, source

CODEBASE = "VICO-UoE/DatasetCondensation"
#: ``utils.get_dataset``'s Normalize constants, by the suite's dataset name (and the codebase's own)
CONSTANTS = {
    "mnist": ("MNIST", (0.1307,), (0.3081,)),
    "fashion-mnist": ("FashionMNIST", (0.2861,), (0.3530,)),
    "svhn": ("SVHN", (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ("CIFAR100", (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ("TinyImageNet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
FILE_NAME = re.compile(r"res_(?P<method>[A-Za-z0-9]+)_(?P<dataset>[A-Za-z0-9]+)_(?P<model>[A-Za-z0-9_]+)_(?P<ipc>\d+)ipc\.pt")


def normalization(dataset: str, mean=None, std=None, path: Path | None = None) -> tuple[tuple, tuple]:
    """The codebase's constants for ``dataset``, or the ``mean``/``std`` given (a dataset it has none for)."""
    if mean is not None and std is not None:
        return tuple(mean), tuple(std)
    if dataset not in CONSTANTS:
        raise FormatError(f"{path}: {CODEBASE} has no Normalize constants for {dataset!r} (it knows "
                          f"{', '.join(CONSTANTS)}); give the mean and std it was saved with (--mean, --std)")
    return CONSTANTS[dataset][1], CONSTANTS[dataset][2]


def read(path: Path, dataset: str, *, experiment: int | None = None, name: str | None = None, root=None, train=None,
         mean=None, std=None, **_) -> list:
    """One set per experiment of ``path`` (or the one ``experiment``), each its own set seed."""
    path = Path(path)
    m = FILE_NAME.fullmatch(path.name)
    if m is None:
        raise FormatError(f"{path}: not a DC-codebase result file (expected res_<method>_<dataset>_<model>_<ipc>ipc.pt)")
    known = CONSTANTS.get(dataset, (None,))[0]
    if known is not None and m["dataset"] != known:
        raise FormatError(f"{path}: the file is for {m['dataset']}, but --dataset is {dataset!r} ({known} in that codebase)")
    train = train if train is not None else source(dataset, root)
    mu, sd = normalization(dataset, mean, std, path)
    if len(mu) != train.shape[0] or len(sd) != train.shape[0]:
        raise FormatError(f"{path}: mean/std have {len(mu)}/{len(sd)} channels, {dataset} images {train.shape[0]}")
    blob = load_pt(path)
    if not isinstance(blob, dict) or not isinstance(blob.get("data"), list) or not blob["data"]:
        raise FormatError(f"{path}: expected a dict whose 'data' is a non-empty list of [images, labels] per experiment")
    exps = range(len(blob["data"])) if experiment is None else [experiment]
    if experiment is not None and not 0 <= experiment < len(blob["data"]):
        raise FormatError(f"{path}: experiment {experiment} out of range: the file holds {len(blob['data'])}")
    record = file_record(path)
    sets = []
    for k in exps:
        pair = blob["data"][k]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise FormatError(f"{path}: data[{k}] must be [images, labels]")
        x = check_images(as_tensor(pair[0], path, f"data[{k}][0]"), train, path)
        y = check_labels(as_tensor(pair[1], path, f"data[{k}][1]"), x.shape[0], train.num_classes, path)
        ipc = int(m["ipc"])
        if int(y.bincount(minlength=train.num_classes).max()) > ipc:
            raise FormatError(f"{path}: data[{k}] holds more than the {ipc} images per class its name states")
        sets.append(build("dc", CODEBASE, train, x, y, [record], name=name or f"{m['method'].lower()}", encoding="model-input",
                          mean=mu, std=sd, experiment=k, seed=k,
                          config={"method": m["method"], "model": m["model"], "ipc": ipc}))
    return sets
