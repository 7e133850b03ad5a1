"""Real datasets: images as uint8 tensors, graphs as torch_geometric datasets.

>>> train = load_dataset("digits", "train")
>>> train.images.shape, train.labels.shape, train.fingerprint[:8]   # doctest: +SKIP
"""
from __future__ import annotations

from ._common import SPLIT_SEED, SPLITS, DatasetNotFoundError, stratified_holdout
from .graphs import KNOWN_TU, GraphDataset, graph_availability, load_graph_dataset
from .images import IMAGE_DATASETS, ImageDataset, image_availability, load_image_dataset

__all__ = [
    "load_dataset", "list_datasets", "dataset_kind", "availability", "ImageDataset", "GraphDataset",
    "DatasetNotFoundError", "IMAGE_DATASETS", "KNOWN_TU", "SPLITS", "SPLIT_SEED",
    "stratified_holdout",
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
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    if dataset_kind(name) == "images":
        return load_image_dataset(name, split, root=root, download=download)
    return load_graph_dataset(name, split, root=root, download=download)


def list_datasets() -> list[str]:
    return [*IMAGE_DATASETS, *KNOWN_TU]


def availability(name: str, root=None) -> dict:
    """Presence and source of a dataset, without decoding it."""
    if dataset_kind(name) == "images":
        return image_availability(name, root)
    return graph_availability(name, root)
