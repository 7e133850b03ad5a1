"""The format's constants, version rules and bounds (``docs/format.md``).

Version 1 holds images, a subset schedule or graphs; version 2 adds the optional compensators part
(INFER); version 3 the replay soft-label part; version 4 what an imported release needs (``model-input``
images, ``preprocessing`` with ZCA, ``synthetic_lr``, ``release`` provenance). A reader accepts every version in
``SUPPORTED_VERSIONS``; a writer writes ``FORMAT_VERSION``.
"""
from __future__ import annotations

import os

import numpy as np
import torch

FORMAT = "condense.synthetic"
FORMAT_VERSION = 4
SUPPORTED_VERSIONS = (1, 2, 3, 4)  # 2 adds compensators (INFER), 3 the replay part, 4 an imported release's parts
KINDS = ("images", "subset-schedule", "graphs")
IMAGE_ENCODINGS = ("uint8", "unit", "standardized", "model-input")
MAX_MODEL_INPUT = 1e4              # |value| bound of model-input images (learned pixels, ZCA space)
SOFT_POLICIES = ("static", "replay")
GRAPH_REQUIRED = ("x", "edge_index", "node_ptr", "edge_ptr", "labels")
GRAPH_OPTIONAL = ("edge_attr", "root_mask", "node_degree", "frequency", "tree_codes", "tree_ptr")
COMPENSATOR_KEYS = ("values", "batch", "image_batch")
COMPENSATOR_OPTIONAL = ("scale", "offset", "teacher")
COMPENSATOR_ENCODINGS = ("affine-uint8", "standardized")
USERBLOCK = 512
SEAL_MAGIC = b"condense.synthetic integrity\n"
HASH_CHUNK = 1 << 20

# Bounds a reader checks before it allocates anything (docs/format.md §5).
MAX_IPC = 10_000_000
MAX_CLASSES = 100_000
MAX_OBJECTS = 64                   # groups + datasets in one file (a set has at most 15)
MAX_EXPANSION = 1100               # decoded bytes per stored byte: deflate's own limit is about 1032
MAX_PIXEL_EXPANSION = 64           # pixel data (images, compensators) that compresses more is not images
ALLOWED_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32"}
TRAINING_SPLITS = ("train",)


def max_set_bytes() -> int:
    """The most bytes a set may decode to, its composed instances included (``$CONDENSE_MAX_SET_BYTES``,
    a positive integer, default 8 GiB): a crafted file cannot make a reader allocate more. Any other
    value of the variable is a one-line error, never a silent default."""
    raw = os.environ.get("CONDENSE_MAX_SET_BYTES", "").strip()
    if not raw:
        return 8 << 30
    if not raw.isdigit() or int(raw) < 1:
        raise FormatError(f"CONDENSE_MAX_SET_BYTES={raw!r}: must be a positive whole number of bytes (e.g. 1000000000)")
    return int(raw)


# The data types each dataset may have (docs/format.md §2). Index-like parts are signed integers:
# unsigned ones have no kernels for many torch ops, and an uint8 index tensor would act as a mask.
SIGNED = ("int8", "int16", "int32", "int64")
FLOATS = ("float16", "float32", "float64")
PIXELS = ("uint8",) + FLOATS
DTYPES = {
    "images": PIXELS, "labels": SIGNED, "soft_labels": FLOATS, "indices": SIGNED,
    "compensators/values": PIXELS, "compensators/scale": FLOATS, "compensators/offset": FLOATS,
    "compensators/batch": SIGNED, "compensators/image_batch": SIGNED, "compensators/teacher": SIGNED,
    "replay/order": SIGNED, "replay/crop": SIGNED, "replay/flip": ("bool", "uint8"), "replay/mix_perm": SIGNED,
    "replay/mix_box": SIGNED, "replay/mix_lam": FLOATS,
    "graphs/x": FLOATS, "graphs/edge_attr": FLOATS, "graphs/edge_index": SIGNED, "graphs/node_ptr": SIGNED,
    "graphs/edge_ptr": SIGNED, "graphs/labels": SIGNED, "graphs/root_mask": ("bool",), "graphs/node_degree": SIGNED,
    "graphs/frequency": SIGNED + FLOATS, "graphs/tree_ptr": SIGNED,
}
# What one graph of a set costs beyond its arrays once unpacked into a PyG ``Data`` for training
# (2,406 bytes measured for 100,000 one-node graphs with torch 2.14 and PyG 2.8), counted with the
# arrays against the size limit before anything is read.
GRAPH_OBJECT_BYTES = 2560
# A source dataset is named, never a path: a registered name or letters, digits, '_', '.', '-' (no '..'),
# with an optional split rule after '@' (``NCI1@mirage``: the official Mirage split of NCI1).
NAME_PATTERN = r"[A-Za-z0-9_.-]{1,128}(@[a-z0-9-]{1,32})?"
FINGERPRINT_PATTERN = r"[0-9a-f]{32}"


class FormatError(ValueError):
    """A synthetic-set file breaks the format: the message names the file and the problem."""



def as_numpy(t) -> np.ndarray:
    """A tensor or array-like as a NumPy array on the host."""
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def stored_graph_array(v) -> np.ndarray:
    """A ``graphs`` part as stored; tree codes (strings) count their UTF-8 bytes as their storage."""
    if isinstance(v, (list, tuple)):
        return np.frombuffer("\0".join(map(str, v)).encode(), dtype=np.uint8)
    return as_numpy(v)
