"""The semantic rules every set satisfies in memory, checked before a write and after a read
(``docs/format.md`` §5): metadata ranges, labels, pixels, budget, compensators, schedules, graphs."""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import torch

from .. import replay as _replay
from .spec import (COMPENSATOR_ENCODINGS, COMPENSATOR_KEYS, GRAPH_REQUIRED, IMAGE_ENCODINGS, MAX_CLASSES, MAX_IPC,
                   SOFT_POLICIES, TRAINING_SPLITS, max_set_bytes)
from .spec import FINGERPRINT_PATTERN, NAME_PATTERN
from .release import check_release_parts
from .summaries import check_summary_budget

if TYPE_CHECKING:
    from .synset import SyntheticSet

def _finite(a: torch.Tensor) -> bool:
    return a.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool) or \
        bool(torch.isfinite(a).all())


def check_set(s: SyntheticSet) -> list[str]:
    """Every rule of the spec that an in-memory set must satisfy; returns the problems found."""
    p = _check_meta(s) or check_release_parts(s)
    if p:
        return p
    if s.kind == "images":
        p += _check_images(s)
    elif s.kind == "subset-schedule":
        p += _check_schedule(s)
    else:
        p += _check_graphs(s)
    return p


def _nonneg_finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _check_meta(s: SyntheticSet) -> list[str]:
    """Metadata ranges (§5 rule 3): what a re-sealed edit could otherwise slip into a result."""
    if not isinstance(s.ipc, int) or not 0 <= s.ipc <= MAX_IPC:
        return [f"ipc must be an integer in [0, {MAX_IPC:,}], got {s.ipc!r}"]
    if not 1 <= s.num_classes <= MAX_CLASSES or len(s.class_names) != s.num_classes:
        return [f"num_classes={s.num_classes} but {len(s.class_names)} class_names"]
    if not isinstance(s.seed, int) or not 0 <= s.seed < 2 ** 63:
        return [f"seed must be an integer in [0, 2^63), got {s.seed!r}"]
    for name in ("condense_seconds", "teacher_seconds"):
        if not _nonneg_finite(getattr(s, name)):
            return [f"{name} must be a finite number >= 0, got {getattr(s, name)!r}"]
    if not isinstance(s.extra, dict) or not isinstance(s.method_config, dict):
        return ["extra and method_config must be JSON objects"]
    if s.teacher_seconds > s.condense_seconds * (1 + 1e-9) + 1e-9:
        return [f"teacher_seconds ({s.teacher_seconds:g}) exceed condense_seconds ({s.condense_seconds:g}), which "
                "include them"]
    cpu, tcpu = s.extra.get("condense_cpu_seconds"), s.extra.get("teacher_cpu_seconds")
    for name, v in (("condense_cpu_seconds", cpu), ("teacher_cpu_seconds", tcpu)):
        if v is not None and not _nonneg_finite(v):
            return [f"extra.{name} must be a finite number >= 0 (or null: not measured), got {v!r}"]
    if cpu is not None and tcpu is not None and tcpu > cpu * (1 + 1e-9) + 1e-9:
        return [f"extra.teacher_cpu_seconds ({tcpu:g}) exceed extra.condense_cpu_seconds ({cpu:g}), which "
                "include them"]
    if not all(isinstance(d, str) for d in s.deviations):
        return ["deviations must be a list of strings"]
    if not isinstance(s.source_dataset, str) or not re.fullmatch(NAME_PATTERN, s.source_dataset) \
            or ".." in s.source_dataset:
        return [f"source_dataset must be a dataset name (letters, digits, '_', '.', '-'; no '..'), got "
                f"{str(s.source_dataset)[:80]!r}"]
    if not isinstance(s.source_fingerprint, str) or not re.fullmatch(FINGERPRINT_PATTERN, s.source_fingerprint):
        return [f"source_fingerprint must be 32 lowercase hex digits, got {str(s.source_fingerprint)[:80]!r}"]
    if s.source_split not in TRAINING_SPLITS:
        return [f"source_split is {s.source_split!r}: a set is condensed from a training split "
                f"({', '.join(TRAINING_SPLITS)}), never from val or test"]
    return []


def _check_labels(labels, n_expected: int | None, num_classes: int, where: str) -> list[str]:
    if labels is None:
        return [f"missing {where}"]
    if labels.ndim != 1:
        return [f"{where} must be 1-D, got shape {tuple(labels.shape)}"]
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        return [f"{where} must be integers, got {labels.dtype}"]
    if n_expected is not None and labels.shape[0] != n_expected:
        return [f"{where} has {labels.shape[0]} entries but there are {n_expected} items"]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        return [f"{where} out of range [0, {num_classes}): min {int(labels.min())}, max {int(labels.max())}"]
    return []


def _check_images(s: SyntheticSet) -> list[str]:
    x = s.images
    if x is None:
        return ["missing images"]
    if x.ndim != 4:
        return [f"images must be N×C×H×W, got shape {tuple(x.shape)}"]
    if s.image_encoding not in IMAGE_ENCODINGS:
        return [f"unknown image encoding {s.image_encoding!r}"]
    if s.image_encoding == "uint8" and x.dtype != torch.uint8:
        return [f"uint8-encoded images stored as {x.dtype}"]
    if s.image_encoding != "uint8" and x.dtype not in (torch.float16, torch.float32):
        return [f"{s.image_encoding} images must be float16 or float32, got {x.dtype}"]
    if len(s.mean) != x.shape[1] or len(s.std) != x.shape[1]:
        return [f"mean/std have {len(s.mean)}/{len(s.std)} channels, images have {x.shape[1]}"]
    if not all(0.0 <= v <= 1.0 for v in s.mean) or not all(1e-4 <= v <= 1.0 for v in s.std):
        return [f"mean must lie in [0, 1] and std in [1e-4, 1] (pixel statistics), got mean {list(s.mean)} "
                f"and std {list(s.std)}"]
    if not _finite(x):
        return ["images contain NaN or Inf values"]
    if s.image_encoding != "uint8" and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if s.image_encoding == "unit" and (lo < -1e-3 or hi > 1 + 1e-3):
            return [f"unit-encoded images must lie in [0, 1], found [{lo:g}, {hi:g}]"]
        if s.image_encoding == "standardized":
            m, sd = torch.tensor(s.mean).view(1, -1, 1, 1), torch.tensor(s.std).view(1, -1, 1, 1)
            pix = x.float() * sd + m
            if float(pix.min()) < -0.01 or float(pix.max()) > 1.01:
                return ["standardized images map to pixels outside [0, 1]"]
    p = _check_labels(s.labels, x.shape[0], s.num_classes, "labels")
    if not p and s.compensators is not None:
        p = _check_compensators(s)
    p = p or _check_budget(s)
    if p:
        return p
    n_inst = s.num_instances()
    if s.soft_labels is not None:
        sl = s.soft_labels
        if s.soft_label_policy not in SOFT_POLICIES:
            p.append(f"unknown soft-label policy {s.soft_label_policy!r}")
        elif s.soft_label_policy == "static" and tuple(sl.shape) != (n_inst, s.num_classes):
            p.append(f"static soft_labels must be {n_inst}×{s.num_classes} (one row per instance), "
                     f"got {tuple(sl.shape)}")
        elif s.soft_label_policy == "replay" and s.replay is None:
            p.append("replay soft_labels need the /replay views they label")
        elif s.soft_label_policy == "replay" and s.compensators is not None:
            p.append("replay soft_labels label a set's own images; a set with compensators stores static ones")
        elif s.soft_label_policy == "replay":
            p.extend(_replay.check(s.replay, sl, n_inst, s.num_classes, int(s.images.shape[-2]),
                                   int(s.images.shape[-1]), s.replay_batch)[:1])
        if not p and (not sl.dtype.is_floating_point or not _finite(sl)):
            p.append("soft_labels must be finite floats")
    if s.replay is not None and s.soft_label_policy != "replay":
        p.append("a /replay part without replay soft labels")
    return p


def _check_budget(s: SyntheticSet) -> list[str]:
    """IPC against the counts: at most ``ipc`` images of any class, and images plus compensators
    within the ``ipc × C`` image slots of the budget; ``ipc = 0`` (the whole split) has no slots to share."""
    k = 0 if s.compensators is None else int(s.compensators["values"].shape[0])
    if s.ipc == 0:
        return ["ipc 0 (the whole split) cannot carry compensators"] if k else []
    counts = torch.bincount(s.labels.long(), minlength=s.num_classes)
    if int(counts.max()) > s.ipc:
        c = int(counts.argmax())
        return [f"ipc is {s.ipc} but class {c} ({s.class_names[c]}) has {int(counts[c])} images"]
    if int(counts.sum()) + k > s.ipc * s.num_classes:
        return [f"{int(counts.sum())} images and {k} compensators exceed the budget of ipc × classes = "
                f"{s.ipc} × {s.num_classes} = {s.ipc * s.num_classes} image slots"]
    return []


def _check_compensators(s: SyntheticSet) -> list[str]:
    c, x = s.compensators, s.images
    if s.format_version < 2:
        return ["compensators need format_version 2"]
    missing = [k for k in COMPENSATOR_KEYS if k not in c]
    if missing:
        return [f"compensators lack {', '.join(missing)}"]
    if s.compensator_encoding not in COMPENSATOR_ENCODINGS:
        return [f"unknown compensator encoding {s.compensator_encoding!r}"]
    v, b, ib = c["values"], c["batch"], c["image_batch"]
    if v.ndim != 4 or tuple(v.shape[1:]) != tuple(x.shape[1:]):
        return [f"compensators must be K×{'×'.join(map(str, x.shape[1:]))}, got {tuple(v.shape)}"]
    if tuple(b.shape) != (v.shape[0],) or tuple(ib.shape) != (x.shape[0],):
        return ["compensators/batch needs one entry per compensator and compensators/image_batch one per image"]
    if b.dtype.is_floating_point or ib.dtype.is_floating_point:
        return ["compensator batch indices must be integers"]
    if s.compensator_encoding == "affine-uint8":
        if v.dtype != torch.uint8 or "scale" not in c or "offset" not in c:
            return ["affine-uint8 compensators need uint8 values with per-compensator scale and offset"]
        if c["scale"].shape != b.shape or c["offset"].shape != b.shape or not (
                _finite(c["scale"]) and _finite(c["offset"])):
            return ["compensator scale/offset need one finite value per compensator"]
        if b.numel() and (bool((c["scale"] < 0).any()) or float(c["scale"].max()) * 255 > 1e4
                          or float(c["offset"].abs().max()) > 1e4):
            return ["compensator scale must be >= 0 and scale·255 and |offset| at most 1e4"]
    elif not v.dtype.is_floating_point or not _finite(v):
        return ["standardized compensators must be finite floats"]
    return _check_pairing(s)


def _check_pairing(s: SyntheticSet) -> list[str]:
    """INFER's pairing (§2.1): an init batch holds at most one image of each class, a compensator's
    batch holds images, and each teacher gives a batch at most one compensator (``teacher`` indexes
    ``method_config.teachers``). These bound the composed instances by images × teachers."""
    c = s.compensators
    b, ib = c["batch"].long(), c["image_batch"].long()
    if ib.numel():
        pairs = torch.unique(torch.stack([ib, s.labels.long()], 1), dim=0)
        if pairs.shape[0] != ib.numel():
            return ["an init batch (compensators/image_batch) holds two images of one class"]
    if b.numel() and not bool(torch.isin(b, ib).all()):
        return ["a compensator's batch holds no image"]
    teachers = s.method_config.get("teachers")
    n_teachers = len(teachers) if isinstance(teachers, list) and teachers else None
    t = c.get("teacher")
    if t is not None:
        if t.shape != b.shape or t.dtype.is_floating_point:
            return ["compensators/teacher needs one integer per compensator"]
        hi = n_teachers if n_teachers is not None else b.numel()
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= hi):
            return [f"compensators/teacher out of range [0, {hi}) (method_config.teachers)"]
        if torch.unique(torch.stack([b, t.long()], 1), dim=0).shape[0] != b.numel():
            return ["a teacher gives one init batch two compensators"]
    elif n_teachers is not None and b.numel():
        if int(torch.unique(b, return_counts=True)[1].max()) > n_teachers:
            return [f"an init batch has more compensators than the {n_teachers} teachers"]
    # Bounds before allocation: what composing would build (every image, then each compensator with the
    # images of its batch, as float32), counted from the indices alone.
    instances = ib.numel()
    if b.numel() and ib.numel():
        batches, sizes = torch.unique(ib, return_counts=True)
        instances += int(sizes[torch.searchsorted(batches, b)].sum())
    composed = instances * int(s.images[0].numel()) * 4 if s.images.shape[0] else 0
    held = composed + s.storage_bytes["total"]   # the composed floats beside the stored parts they come from
    if held > max_set_bytes():
        return [f"composing {instances:,} instances would take {composed:,} bytes ({held:,} with the stored parts), "
                f"over the {max_set_bytes():,}-byte limit (CONDENSE_MAX_SET_BYTES)"]
    return []


def _check_schedule(s: SyntheticSet) -> list[str]:
    idx = s.indices
    if idx is None:
        return ["missing indices"]
    if idx.ndim != 2:
        return [f"indices must be rounds×n, got shape {tuple(idx.shape)}"]
    if idx.dtype.is_floating_point or idx.dtype == torch.bool:
        return [f"indices must be integers, got {idx.dtype}"]
    if s.source_size is None or not 1 <= s.source_size <= 1 << 40:
        return ["indices need a positive source_size"]
    if idx.shape[0] < 1 or idx.shape[1] < 1 or idx.shape[1] > s.source_size:
        return [f"indices must hold at least one round of 1..source_size ({s.source_size}) items, "
                f"got shape {tuple(idx.shape)}"]
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= s.source_size):
        return [f"indices out of range [0, {s.source_size})"]
    if not s.source_fingerprint:
        return ["a subset-schedule needs its source_fingerprint"]
    # The budget from the content: a round holds at most IPC × C items, or, in RS2's selection-ratio
    # mode, its fraction of the source (each class rounded, at least one item each).
    n, fraction = int(idx.shape[1]), s.method_config.get("fraction")
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool):
        most = math.floor(fraction * s.source_size) + s.num_classes
        if n > most:
            return [f"a round holds {n} items, more than fraction {fraction:g} of {s.source_size} items allows ({most})"]
    elif s.ipc > 0 and n > s.ipc * s.num_classes:
        return [f"a round holds {n} items, more than ipc × classes = {s.ipc} × {s.num_classes} = "
                f"{s.ipc * s.num_classes}"]
    return []


def _check_graphs(s: SyntheticSet) -> list[str]:
    g = s.graphs
    if g is None:
        return ["missing graphs"]
    missing = [k for k in GRAPH_REQUIRED if k not in g]
    if missing:
        return [f"graphs lack {', '.join(missing)}"]
    x, ei, nptr, eptr, y = (g[k] for k in GRAPH_REQUIRED)
    if x.ndim != 2 or ei.ndim != 2 or ei.shape[0] != 2:
        return [f"graphs need x N×F and edge_index 2×E, got {tuple(x.shape)} and {tuple(ei.shape)}"]
    n_graphs = y.shape[0] if y.ndim == 1 else -1
    for name, ptr, total in (("node_ptr", nptr, x.shape[0]), ("edge_ptr", eptr, ei.shape[1])):
        if ptr.ndim != 1 or ptr.shape[0] != n_graphs + 1 or int(ptr[0]) != 0 or int(ptr[-1]) != total \
                or bool((ptr[1:] < ptr[:-1]).any()):
            return [f"graphs/{name} must rise from 0 to {total} over {n_graphs} graphs"]
    if not _finite(x):
        return ["graphs/x contains NaN or Inf values"]
    if ei.numel():
        sizes = (nptr[1:] - nptr[:-1])
        per_edge = torch.repeat_interleave(sizes, (eptr[1:] - eptr[:-1]))
        if int(ei.min()) < 0 or bool((ei >= per_edge.unsqueeze(0)).any()):
            return ["graphs/edge_index refers to nodes outside its graph (indices are local per graph)"]
    if "edge_attr" in g and (g["edge_attr"].shape[0] != ei.shape[1] or not _finite(g["edge_attr"])):
        return ["graphs/edge_attr must have one finite row per edge"]
    if "root_mask" in g and tuple(g["root_mask"].shape) != (x.shape[0],):
        return ["graphs/root_mask must have one entry per node"]
    if "node_degree" in g and (tuple(g["node_degree"].shape) != (x.shape[0],) or g["node_degree"].dtype.is_floating_point
                               or g["node_degree"].dtype == torch.bool or bool((g["node_degree"] < 0).any())):
        return ["graphs/node_degree must have one non-negative integer per node"]
    if "frequency" in g and (tuple(g["frequency"].shape) != (n_graphs,) or not _finite(g["frequency"])):
        return ["graphs/frequency must have one finite entry per graph"]
    if ("tree_codes" in g) != ("tree_ptr" in g):
        return ["graphs/tree_codes and graphs/tree_ptr come together"]
    if "tree_ptr" in g:
        tp = g["tree_ptr"]
        if tp.ndim != 1 or tp.shape[0] != n_graphs + 1 or int(tp[-1]) != len(g["tree_codes"]):
            return ["graphs/tree_ptr must index tree_codes per graph"]
    p = _check_labels(y, None, s.num_classes, "graphs/labels")
    if p or s.ipc == 0:
        return p
    if "tree_codes" in g:   # a summary: its byte budget, from content
        return check_summary_budget(s)
    counts = torch.bincount(y.long(), minlength=s.num_classes)   # a subset of real graphs: IPC from content
    if int(counts.max()) > s.ipc:
        c = int(counts.argmax())
        return [f"ipc is {s.ipc} but class {c} ({s.class_names[c]}) has {int(counts[c])} graphs"]
    return []
