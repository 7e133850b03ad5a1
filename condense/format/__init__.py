"""The self-describing HDF5 synthetic-set format (``docs/format.md``), one job a module.

- :mod:`.spec`: constants, version rules, bounds and :class:`FormatError`;
- :mod:`.synset`: :class:`SyntheticSet` and the datasets it yields;
- :mod:`.write`: :func:`save` and the integrity seal;
- :mod:`.read`: the hostile-file preflight and :func:`load`;
- :mod:`.rules`: the semantic checks a set passes before a write and after a read;
- :mod:`.graphs`: the ``graphs`` part through PyG's ``collate`` and ``separate``.

``save`` writes atomically (temporary file, fsync, rename). ``load`` and ``validate`` check every
structural rule of the spec and raise :class:`FormatError` -- one line naming the file and the
problem -- for anything else: a truncated or non-HDF5 file, a missing key, an unknown version, a
shape or label mismatch, NaN/Inf values, out-of-range labels or indices, a failed checksum.
"""
from .graphs import pack_graphs, unpack_graphs
from .read import load, validate
from .spec import FORMAT, FORMAT_VERSION, SUPPORTED_VERSIONS, FormatError, max_set_bytes
from .synset import ResolvedSchedule, SyntheticImageDataset, SyntheticSet
from .write import reseal, save

__all__ = ["FORMAT", "FORMAT_VERSION", "SUPPORTED_VERSIONS", "FormatError", "ResolvedSchedule", "SyntheticImageDataset",
           "SyntheticSet", "load", "max_set_bytes", "pack_graphs", "reseal", "save", "unpack_graphs", "validate"]
