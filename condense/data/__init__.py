"""Real datasets: images as uint8 tensors, graphs as torch_geometric datasets (torch_geometric is
imported with the first graph dataset, so image work never loads it).

>>> train = load_dataset("digits", "train")
>>> train.images.shape, train.labels.shape, train.fingerprint[:8]   # doctest: +SKIP
"""
from __future__ import annotations

import re

from ..format.spec import NAME_PATTERN
from ._common import KNOWN_TU, SPLIT_SEED, SPLITS, DatasetNotFoundError, stratified_holdout
from .images import IMAGE_DATASETS, ImageDataset, image_availability, load_image_dataset

__all__ = [
    "load_dataset", "list_datasets", "dataset_kind", "availability", "ImageDataset", "GraphDataset",
    "DatasetNotFoundError", "IMAGE_DATASETS", "KNOWN_TU", "SPLITS", "SPLIT_SEED",
    "stratified_holdout", "check_name",
]


def dataset_kind(name: str) -> str:
    """``"images"`` for the image registry; any other name is taken as a TU graph dataset."""
    return "images" if name in IMAGE_DATASETS else "graphs"


def load_dataset(name: str, split: str, root=None, download: bool | None = None):
    """Load one split (``train``, ``val`` or ``test``) of a dataset.

    ``root`` defaults to ``$CONDENSE_DATA``, then ``~/.cache/condense/data``; it may be read-only.
    ``download=None`` downloads only when ``$CONDENSE_DOWNLOAD=1``. A missing dataset raises
    :class:`DatasetNotFoundError` naming every place looked and how to provide it.
    """
    check_name(name)
    if dataset_kind(name) == "images":
        return load_image_dataset(name, split, root=root, download=download)
    from .graphs import load_graph_dataset   # torch_geometric loads with the first graph dataset

    return load_graph_dataset(name, split, root=root, download=download)


def list_datasets() -> list[str]:
    return [*IMAGE_DATASETS, *KNOWN_TU]


def check_name(name) -> None:
    """A dataset is named, never a path: letters, digits, '_', '.', '-', no '..' (docs/format.md), so
    that no name from a file or a command line is joined into a path outside the data roots."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or ".." in name:
        raise ValueError(f"dataset name must be letters, digits, '_', '.' or '-', with an optional '@RULE' split "
                         f"rule (a name, not a path), got {str(name)[:80]!r}")


def availability(name: str, root=None) -> dict:
    """Presence and source of a dataset, without decoding it."""
    check_name(name)
    if dataset_kind(name) == "images":
        return image_availability(name, root)
    from .graphs import graph_availability

    return graph_availability(name, root)


def __getattr__(name: str):
    if name == "GraphDataset":   # a torch_geometric class: loaded where asked for, not with the package
        from .graphs import GraphDataset

        return GraphDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
