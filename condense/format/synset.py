"""The in-memory synthetic set (:class:`SyntheticSet`) and the datasets it yields for training."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import replay as _replay
from .._version import __version__
from .graphs import unpack_graphs
from .spec import FORMAT, KINDS, FormatError, as_numpy, stored_graph_array



@dataclass(eq=False)
class SyntheticSet:
    """A condensed set in memory: its parts (tensors) and its full metadata.

    ``images`` are kept in their stored encoding (``image_encoding``: ``uint8`` pixels, ``unit``
    floats in [0, 1], or ``standardized`` by ``mean``/``std``); :meth:`dataset` yields standardized
    float images ready for a model.
    """

    kind: str
    method: str
    ipc: int
    num_classes: int
    class_names: tuple[str, ...]
    source_dataset: str
    source_fingerprint: str
    seed: int
    method_config: dict = field(default_factory=dict)
    source_split: str = "train"
    # images kind
    images: torch.Tensor | None = None
    image_encoding: str = "uint8"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    labels: torch.Tensor | None = None
    soft_labels: torch.Tensor | None = None
    soft_label_policy: str | None = None
    soft_label_attrs: dict = field(default_factory=dict)
    compensators: dict[str, torch.Tensor] | None = None   # INFER's universal feature compensators
    compensator_encoding: str = "affine-uint8"
    replay: dict[str, torch.Tensor] | None = None         # per-epoch views of replay soft labels (CV-DD)
    replay_batch: int = 0                                  # the replay's batch size (CutMix pairs within it)
    # subset-schedule kind
    indices: torch.Tensor | None = None
    source_size: int | None = None
    # graphs kind
    graphs: dict[str, Any] | None = None
    # provenance
    condense_seconds: float = 0.0
    teacher_seconds: float = 0.0
    device: str = "cpu"
    created_utc: str = ""
    library_version: str = __version__
    format_version: int = 0       # 0: the lowest version that describes the set (3 with replay, else 2)
    deviations: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)
    # version 4: a set imported from another codebase's release (condense.format.importers)
    preprocessing: dict = field(default_factory=dict)   # {"zca": {...}}: what maps test pixels to model input
    synthetic_lr: float | None = None                     # a learned learning rate (MTT, DATM), for lr="from-set"
    release: dict = field(default_factory=dict)          # provenance: codebase, files and their SHA-256, experiment
    path: Path | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        self.class_names = tuple(str(c) for c in self.class_names)
        self.deviations = tuple(self.deviations)
        lowest = self.lowest_version()
        if not self.format_version or self.format_version < lowest:
            self.format_version = lowest
        if not self.created_utc:
            self.created_utc = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def lowest_version(self) -> int:
        """The lowest format version that describes this set: 4 with a release's parts (model-input
        images, preprocessing, a learned learning rate, provenance), 3 with replay labels, else 2."""
        if self.image_encoding == "model-input" or self.preprocessing or self.synthetic_lr is not None or self.release:
            return 4
        return 3 if self.replay is not None else 2

    def __len__(self) -> int:
        if self.kind == "images":
            return int(self.labels.shape[0])
        if self.kind == "subset-schedule":
            return int(self.indices.shape[1])
        return int(self.graphs["labels"].shape[0])

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return (f"SyntheticSet(kind={self.kind!r}, method={self.method!r}, ipc={self.ipc}, "
                f"source={self.source_dataset!r}, n={len(self)}, bytes={self.storage_bytes['total']}{where})")

    # ------------------------------------------------------------------ storage accounting

    def parts(self) -> dict[str, dict[str, np.ndarray]]:
        """The arrays that make up each counted part, in their stored dtypes."""
        out: dict[str, dict[str, np.ndarray]] = {}
        if self.images is not None:
            out["images"] = {"images": as_numpy(self.images)}
        if self.labels is not None:
            out["labels"] = {"labels": as_numpy(self.labels)}
        if self.soft_labels is not None:
            out["soft_labels"] = {"soft_labels": as_numpy(self.soft_labels)}
        if self.compensators is not None:
            out["compensators"] = {k: as_numpy(v) for k, v in self.compensators.items()}
        if self.replay is not None:
            out["replay"] = {k: as_numpy(v) for k, v in self.replay.items()}
        if self.indices is not None:
            out["indices"] = {"indices": as_numpy(self.indices)}
        if self.graphs is not None:
            out["graphs"] = {k: v for k, v in ((k, stored_graph_array(v)) for k, v in self.graphs.items())}
        return out

    @property
    def storage_bytes(self) -> dict[str, int]:
        """Bytes per part (uncompressed, stored dtype) and their ``total``."""
        sizes = {name: int(sum(a.nbytes for a in arrays.values())) for name, arrays in self.parts().items()}
        sizes["total"] = int(sum(sizes.values()))
        return sizes

    # ------------------------------------------------------------------ consumption

    def float_images(self) -> torch.Tensor:
        """Images standardized by the source mean and std (the models' input space)."""
        if self.images is None:
            raise ValueError(f"a {self.kind!r} set has no images")
        x = self.images
        if self.image_encoding in ("standardized", "model-input"):
            return x.float()
        x = x.float() / 255.0 if self.image_encoding == "uint8" else x.float()
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x - mean) / std

    def compensator_values(self) -> torch.Tensor:
        """The compensators decoded to the models' input space (K×C×H×W float)."""
        c = self.compensators
        if self.compensator_encoding == "affine-uint8":
            return c["offset"].float().view(-1, 1, 1, 1) + c["scale"].float().view(-1, 1, 1, 1) * c["values"].float()
        return c["values"].float()

    def _init_batches(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images sorted by init batch (stable: image order within a batch), and for each
        compensator where its batch starts in that order and how many images it holds."""
        ib, b = self.compensators["image_batch"].long(), self.compensators["batch"].long()
        sorted_ib, perm = torch.sort(ib, stable=True)
        start = torch.searchsorted(sorted_ib, b, right=False)
        return perm, start, torch.searchsorted(sorted_ib, b, right=True) - start

    def instance_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(image index, compensator index) of every composed instance, in the format's order:
        compensator by compensator, and within one, the images of its init batch in image order."""
        perm, start, count = self._init_batches()
        k_idx = torch.repeat_interleave(torch.arange(count.numel()), count)
        offset = torch.arange(int(count.sum())) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        return perm[torch.repeat_interleave(start, count) + offset], k_idx

    def instances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training instances (standardized float images) and hard labels.

        Plain sets: their images. With compensators (INFER): every image alone, then every image
        plus each compensator of its batch, clipped to the valid pixel range.
        """
        x, y = self.float_images(), self.labels.long()
        if self.compensators is None:
            return x, y
        i_idx, k_idx = self.instance_pairs()
        lo = ((0.0 - torch.tensor(self.mean)) / torch.tensor(self.std)).view(1, -1, 1, 1)
        hi = ((1.0 - torch.tensor(self.mean)) / torch.tensor(self.std)).view(1, -1, 1, 1)
        composed = torch.maximum(torch.minimum(x[i_idx] + self.compensator_values()[k_idx], hi), lo)
        return torch.cat([x, composed]), torch.cat([y, y[i_idx]])

    def num_instances(self) -> int:
        """Training instances, counted without composing them: images, plus per compensator the
        images of its init batch."""
        n = int(self.labels.shape[0])
        return n if self.compensators is None else n + int(self._init_batches()[2].sum())

    @property
    def replay_epochs(self) -> int:
        """Epochs of stored replay views (0: none)."""
        return int(self.soft_labels.shape[0]) if self.soft_label_policy == "replay" else 0

    def replay_views(self, epoch: int, positions: torch.Tensor | None = None,
                     images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Epoch ``epoch``'s stored views at ``positions`` (default: all, in visiting order), with the
        hard label of each view's own image and its stored logits (:mod:`condense.replay`).
        ``images``: the standardized images on a device (default: :meth:`float_images`)."""
        if self.soft_label_policy != "replay":
            raise ValueError(f"{self.path or 'this set'}: has no replay soft labels")
        if not isinstance(epoch, int) or not 0 <= epoch < self.replay_epochs:
            raise ValueError(f"{self.path or 'this set'}: replay epoch must be in [0, {self.replay_epochs}), got {epoch!r}")
        x = self.float_images() if images is None else images
        pos = torch.arange(len(self)) if positions is None else positions.long().cpu()
        v = _replay.views(x, self.replay, epoch, pos, self.replay_batch)
        y = self.labels.long()[self.replay["order"][epoch].long()[pos]]
        return v, y, self.soft_labels[epoch][pos]

    def attach_replay(self, other: "SyntheticSet") -> "SyntheticSet":
        """This set with the replay soft labels of ``other`` (e.g. a separate replay file), refused
        unless they were made for exactly these images and labels."""
        if other.soft_label_policy != "replay" or other.replay is None:
            raise FormatError(f"{other.path or 'the other set'}: holds no replay soft labels")
        mine, theirs = _replay.set_digest(self.images, self.labels), _replay.set_digest(other.images, other.labels)
        if mine != theirs:
            raise FormatError(f"{other.path or 'the other set'}: replay labels were made for another set (images and "
                              f"labels fingerprint {theirs[:12]}…, this set {mine[:12]}…)")
        return replace(self, format_version=max(3, self.format_version), soft_labels=other.soft_labels, soft_label_policy="replay",
                       soft_label_attrs=dict(other.soft_label_attrs), replay=dict(other.replay),
                       replay_batch=other.replay_batch)

    def dataset(self, transform: Callable | None = None, epoch: int | None = None, hard_only: bool = False):
        """A torch ``Dataset``: (image, label[, soft label]) for images, ``Data`` for graphs.

        A set with replay soft labels gives epoch ``epoch``'s stored augmented views, in visiting order,
        with their logits (``epoch`` is then required: its labels belong to those views only);
        ``hard_only=True`` gives the plain images with hard labels instead."""
        if self.kind == "images":
            if self.soft_label_policy == "replay" and not hard_only:
                if epoch is None:
                    raise ValueError(f"{self.path or 'this set'}: its soft labels are per epoch "
                                     f"({self.replay_epochs} replay epochs): pass epoch=e for that epoch's stored "
                                     "views and logits, or hard_only=True for the images with hard labels")
                x, y, soft = self.replay_views(epoch)
                return SyntheticImageDataset(x, y, soft, transform)
            if epoch is not None and not hard_only:
                raise ValueError(f"{self.path or 'this set'}: has no replay soft labels; epoch applies only to them")
            x, y = self.instances()
            soft = self.soft_labels if self.soft_label_policy == "static" and not hard_only else None
            return SyntheticImageDataset(x, y, soft, transform)
        if self.kind == "graphs":
            return unpack_graphs(self.graphs)
        raise ValueError("a subset-schedule set indexes its source: call .resolve(source) for per-round datasets")

    def resolve(self, source) -> "ResolvedSchedule":
        """Bind a subset-schedule to its source dataset, refusing a fingerprint mismatch."""
        if self.kind != "subset-schedule":
            raise ValueError(f"resolve() applies to subset-schedule sets, not {self.kind!r}")
        got = getattr(source, "fingerprint", None)
        if got != self.source_fingerprint:
            raise FormatError(
                f"{self.path or '<memory>'}: schedule was made for source fingerprint "
                f"{self.source_fingerprint[:12]}… ({self.source_dataset}/{self.source_split}) but the given "
                f"source has {str(got)[:12]}…; pass the same dataset split")
        if len(source) != self.source_size:
            raise FormatError(f"{self.path or '<memory>'}: source has {len(source)} items, schedule expects "
                              f"{self.source_size}")
        return ResolvedSchedule(self.indices, source)

    def metadata(self) -> dict:
        """Everything but the arrays, as plain JSON-able values (what the root attributes hold)."""
        return {
            "format": FORMAT, "format_version": self.format_version, "kind": self.kind,
            "method": self.method, "method_config": self.method_config, "seed": self.seed,
            "ipc": self.ipc, "num_classes": self.num_classes, "class_names": list(self.class_names),
            "source_dataset": self.source_dataset, "source_split": self.source_split,
            "source_fingerprint": self.source_fingerprint, "created_utc": self.created_utc,
            "library_version": self.library_version, "condense_seconds": self.condense_seconds,
            "teacher_seconds": self.teacher_seconds, "device": self.device,
            "storage_bytes": self.storage_bytes, "deviations": list(self.deviations), "extra": self.extra,
            **({"preprocessing": self.preprocessing} if self.preprocessing else {}),
            **({"synthetic_lr": self.synthetic_lr} if self.synthetic_lr is not None else {}),
            **({"release": self.release} if self.release else {}),
        }

    def with_meta(self, **kw) -> "SyntheticSet":
        return replace(self, **kw)


class SyntheticImageDataset(torch.utils.data.Dataset):
    """Standardized float images with hard labels and, when stored statically, soft labels."""

    def __init__(self, images, labels, soft_labels=None, transform=None):
        self.images, self.labels, self.soft_labels, self.transform = images, labels, soft_labels, transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i):
        x = self.images[i]
        if self.transform is not None:
            x = self.transform(x)
        if self.soft_labels is None:
            return x, self.labels[i]
        return x, self.labels[i], self.soft_labels[i].float()

    def tensors(self):
        return self.images, self.labels


class ResolvedSchedule:
    """Per-round datasets of a subset-schedule: ``sched[r]`` is round r's subset of the source."""

    def __init__(self, indices: torch.Tensor, source):
        self.indices, self.source = indices.long(), source

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, r: int):
        return self.source.subset(self.indices[r], rule={"round": int(r)})

