"""Rules for the parts an imported release brings (format version 4, ``docs/format.md`` §2.4):
``model-input`` images, ``preprocessing`` (ZCA), a learned ``synthetic_lr`` and ``release`` provenance.

A set whitened by ZCA is only meaningful beside the transform that whitened it: ``preprocessing.zca``
names the fit (``eps``, the split it was fitted on, the implementation) and carries the SHA-256 of the
fitted matrix, which the evaluator compares with its own fit on the local training split.
"""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from .spec import MAX_MODEL_INPUT

if TYPE_CHECKING:
    from .synset import SyntheticSet

ZCA_IMPLEMENTATIONS = ("kornia.enhance.ZCAWhitening",)
ZCA_KEYS = {"eps", "fitted_on", "implementation", "matrix_sha256", "normalized", "probe"}
PROBE_SIZE = 8
RELEASE_KINDS = ("dc", "mtt", "folder")
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_TEXT = 512
MAX_FILES = 10_000


def _text(v, limit: int = MAX_TEXT) -> bool:
    return isinstance(v, str) and 0 < len(v) <= limit and v.isprintable()


def check_zca(zca, source_dataset: str) -> list[str]:
    """``preprocessing.zca``: a known implementation, ``eps`` in (0, 10], fitted on the source's
    training split (the official one: the suite's ``train`` and ``val``), whether the pixels were
    standardized first, the fitted matrix's SHA-256 and its ``probe`` (:mod:`condense.zca`)."""
    if not isinstance(zca, dict) or set(zca) != ZCA_KEYS:
        return [f"preprocessing.zca must be an object with exactly {', '.join(sorted(ZCA_KEYS))}"]
    eps = zca["eps"]
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps <= 10:
        return [f"preprocessing.zca.eps must be a number in (0, 10], got {eps!r}"]
    if zca["fitted_on"] != f"{source_dataset}/train":
        return [f"preprocessing.zca.fitted_on must be {source_dataset + '/train'!r} (the source's training split), "
                f"got {str(zca['fitted_on'])[:80]!r}"]
    if zca["implementation"] not in ZCA_IMPLEMENTATIONS:
        return [f"preprocessing.zca.implementation {str(zca['implementation'])[:80]!r} is not one this library "
                f"reproduces ({', '.join(ZCA_IMPLEMENTATIONS)})"]
    if not isinstance(zca["normalized"], bool):
        return ["preprocessing.zca.normalized must be true or false"]
    if not isinstance(zca["matrix_sha256"], str) or not SHA256.fullmatch(zca["matrix_sha256"]):
        return ["preprocessing.zca.matrix_sha256 must be 64 lowercase hex digits"]
    probe = zca["probe"]
    if not isinstance(probe, list) or len(probe) != PROBE_SIZE or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in probe):
        return [f"preprocessing.zca.probe must be {PROBE_SIZE} finite numbers"]
    return []


def check_release(r) -> list[str]:
    """``release``: the codebase, the importer kind, each input file's name, bytes and SHA-256, the
    experiment index (or null) and a display name."""
    keys = {"codebase", "kind", "files", "experiment", "name"}
    if not isinstance(r, dict) or set(r) != keys:
        return [f"release must be an object with exactly {', '.join(sorted(keys))}"]
    if r["kind"] not in RELEASE_KINDS:
        return [f"release.kind must be one of {', '.join(RELEASE_KINDS)}, got {str(r['kind'])[:40]!r}"]
    if not _text(r["codebase"]) or not _text(r["name"], 128):
        return ["release.codebase and release.name must be printable strings (at most 512 and 128 characters)"]
    if r["experiment"] is not None and (not isinstance(r["experiment"], int) or isinstance(r["experiment"], bool)
                                        or not 0 <= r["experiment"] < 1_000_000):
        return [f"release.experiment must be null or an integer in [0, 1,000,000), got {r['experiment']!r}"]
    files = r["files"]
    if not isinstance(files, list) or not 1 <= len(files) <= MAX_FILES:
        return [f"release.files must list 1 to {MAX_FILES:,} input files"]
    for f in files:
        if not isinstance(f, dict) or set(f) != {"name", "bytes", "sha256"} or not _text(f["name"]) \
                or not isinstance(f["bytes"], int) or f["bytes"] < 0 or not isinstance(f["sha256"], str) \
                or not SHA256.fullmatch(f["sha256"]):
            return ["each release.files entry must be {name, bytes, sha256} (a printable name, a byte count, "
                    "64 hex digits)"]
    return []


def check_release_parts(s: SyntheticSet) -> list[str]:
    """The version-4 parts of ``s`` (every rule above). A set in memory always states the version its parts
    need (:class:`SyntheticSet` raises it); a file that states less is refused by the reader."""
    if s.preprocessing or s.synthetic_lr is not None or s.image_encoding == "model-input":
        if s.kind != "images":
            return ["preprocessing, synthetic_lr and model-input encoding apply to image sets only"]
    if s.preprocessing:
        if set(s.preprocessing) != {"zca"}:
            return [f"preprocessing may only hold 'zca', got {sorted(map(str, s.preprocessing))[:5]}"]
        if s.image_encoding != "model-input":
            return ["a ZCA-whitened set stores model-input images (the whitened values)"]
        p = check_zca(s.preprocessing["zca"], s.source_dataset)
        if p:
            return p
    lr = s.synthetic_lr
    if lr is not None and (not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr)
                           or not 0 < lr <= 100):
        return [f"synthetic_lr must be a number in (0, 100], got {lr!r}"]
    if s.release:
        p = check_release(s.release)
        if p:
            return p
    if s.image_encoding == "model-input" and s.images is not None and s.images.numel():
        lo, hi = float(s.images.min()), float(s.images.max())
        if max(-lo, hi) > MAX_MODEL_INPUT:
            return [f"model-input images must lie within ±{MAX_MODEL_INPUT:g}, found [{lo:g}, {hi:g}]"]
    return []
