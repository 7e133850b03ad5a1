"""ZCA whitening as MTT fits it (Cazenavette et al., CVPR 2022, ``utils.get_dataset`` with ``--zca``):
kornia's ``ZCAWhitening`` with ``eps`` 0.1, fitted on the whole official training split of pixels in
[0, 1] (``normalized=False``: MTT applies no ``Normalize`` when it whitens), then applied to the
training and test images alike.

A whitened set is meaningful only beside its transform, so an imported set records the fit
(``preprocessing.zca``: eps, split, implementation, whether pixels were standardized first) and the
SHA-256 of the fitted float32 matrix. The evaluator refits on the local copy of the same split (cached
under ``$CONDENSE_CACHE/zca`` by the split's fingerprint and the parameters) and compares: the same
hash, or, where another BLAS rounds the last bits differently, the same ``probe`` (the matrix applied
to a fixed vector) within 1e-4 relative; anything else is another transform, refused in one line.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from ._paths import CacheError, atomic_write, cache_dir
from .data import load_dataset
from .data._common import content_hash
from .format import FormatError

IMPLEMENTATION = "kornia.enhance.ZCAWhitening"
PROBE_SIZE = 8
PROBE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ZCA:
    """A fitted whitening: ``(x.flatten(1) - mean) @ matrix``, reshaped back."""

    matrix: torch.Tensor    # D×D float32
    mean: torch.Tensor      # 1×D float32
    eps: float
    normalized: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.float().flatten(1) - self.mean.to(x.device)
        return (flat @ self.matrix.to(x.device)).view_as(x)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.matrix.numpy(), dtype="<f4").tobytes()).hexdigest()

    def probe(self) -> list[float]:
        """The matrix applied to a fixed pseudo-random vector, at ``PROBE_SIZE`` spread rows."""
        d = self.matrix.shape[0]
        v = torch.from_numpy(np.random.default_rng(0).standard_normal(d))
        out = self.matrix.double() @ v
        rows = np.linspace(0, d - 1, PROBE_SIZE).round().astype(int)
        return [float(out[i]) for i in rows]

    def record(self, dataset: str) -> dict:
        """What a set whitened by this transform stores as ``preprocessing.zca``."""
        return {"eps": self.eps, "fitted_on": f"{dataset}/train", "implementation": IMPLEMENTATION,
                "normalized": self.normalized, "matrix_sha256": self.sha256, "probe": self.probe()}


def official_train(dataset: str, root=None):
    """The official training split: the suite's ``train`` and ``val`` together, in their official order
    (MTT fits ZCA on all of it)."""
    tr, va = load_dataset(dataset, "train", root=root), load_dataset(dataset, "val", root=root)
    order = torch.argsort(torch.cat([tr.positions, va.positions]))
    images = torch.cat([tr.images, va.images])[order]
    return images, content_hash(tr.fingerprint, va.fingerprint)


def pixels(images: torch.Tensor, mean, std, normalized: bool) -> torch.Tensor:
    """uint8 images as the transform sees them: [0, 1], standardized by ``mean``/``std`` if ``normalized``."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if normalized:
        x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    return x


def fit_zca(dataset: str, eps: float = 0.1, normalized: bool = False, mean=(), std=(), root=None) -> ZCA:
    """kornia's ZCA fitted on ``dataset``'s official training split (float64, stored as float32), cached."""
    from kornia.enhance import ZCAWhitening  # kornia loads only where a set is whitened

    images, fingerprint = official_train(dataset, root)
    key = content_hash(fingerprint, json.dumps({"eps": eps, "normalized": normalized, "mean": list(mean) if normalized
                                                else [], "std": list(std) if normalized else [], "impl": IMPLEMENTATION}))
    path = cache_dir("zca", write=False) / f"{key}.pt"
    if path.is_file():
        try:
            got = torch.load(path, weights_only=True)
            return ZCA(got["matrix"], got["mean"], float(eps), bool(normalized))
        except (OSError, RuntimeError, KeyError, TypeError):
            pass  # a damaged cache entry is refitted
    z = ZCAWhitening(eps=float(eps), compute_inv=False).fit(pixels(images, mean, std, normalized).double())
    fitted = ZCA(z.transform_matrix.float().contiguous(), z.mean_vector.float().contiguous(), float(eps), bool(normalized))
    try:
        cache_dir("zca")
        atomic_write(path, lambda fh: torch.save({"matrix": fitted.matrix, "mean": fitted.mean}, fh))
    except (CacheError, OSError):
        pass  # an unwritable cache only costs the refit next time
    return fitted


def check_fit(record: dict, fitted: ZCA, where) -> str:
    """``"exact"`` when the local refit has the set's matrix hash, ``"probe"`` when only the last bits
    differ; otherwise a one-line :class:`condense.format.FormatError` naming ``where``."""
    if fitted.sha256 == record["matrix_sha256"]:
        return "exact"
    mine, theirs = np.asarray(fitted.probe()), np.asarray(record.get("probe", []), dtype=float)
    if theirs.shape == mine.shape and np.abs(mine - theirs).max() <= PROBE_TOLERANCE * max(1.0, np.abs(mine).max()):
        return "probe"
    raise FormatError(f"{where}: whitened by another ZCA transform than the one fitted here on "
                      f"{record['fitted_on']} (eps {record['eps']:g}; matrix {record['matrix_sha256'][:12]}…, "
                      f"here {fitted.sha256[:12]}…): evaluate it beside the data it was whitened with")
