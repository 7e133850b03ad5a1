"""Compatibility home of the synthetic-set format, which lives in :mod:`condense.format`.

Every name scripts imported from here keeps working (``condense.store.FormatError``, ``load``,
``save``, ``SyntheticSet``, ``pack_graphs``, ``reseal``, the format constants).
"""
from .format import (FORMAT, FORMAT_VERSION, SUPPORTED_VERSIONS, FormatError, ResolvedSchedule,  # noqa: F401
                     SyntheticImageDataset, SyntheticSet, load, max_set_bytes, pack_graphs, reseal, save,
                     unpack_graphs, validate)
from .format.spec import (ALLOWED_FILTERS, COMPENSATOR_ENCODINGS, COMPENSATOR_KEYS,  # noqa: F401
                          COMPENSATOR_OPTIONAL, GRAPH_OPTIONAL, GRAPH_REQUIRED, IMAGE_ENCODINGS, KINDS,
                          MAX_CLASSES, MAX_EXPANSION, MAX_IPC, MAX_OBJECTS, MAX_PIXEL_EXPANSION, SEAL_MAGIC,
                          SOFT_POLICIES, TRAINING_SPLITS, USERBLOCK)

__all__ = ["ALLOWED_FILTERS", "COMPENSATOR_ENCODINGS", "COMPENSATOR_KEYS", "COMPENSATOR_OPTIONAL", "FORMAT", "FORMAT_VERSION",
           "FormatError", "GRAPH_OPTIONAL", "GRAPH_REQUIRED", "IMAGE_ENCODINGS", "KINDS", "MAX_CLASSES", "MAX_EXPANSION",
           "MAX_IPC", "MAX_OBJECTS", "MAX_PIXEL_EXPANSION", "ResolvedSchedule", "SEAL_MAGIC", "SOFT_POLICIES",
           "SUPPORTED_VERSIONS", "SyntheticImageDataset", "SyntheticSet", "TRAINING_SPLITS", "USERBLOCK", "load",
           "max_set_bytes", "pack_graphs", "reseal", "save", "unpack_graphs", "validate"]
