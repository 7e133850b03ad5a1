"""Forgers: the crafted, damaged and fake inputs the cases are built from."""
from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np




def marker_pickle(path: Path, marker: Path) -> None:
    """A pickle that creates ``marker`` when unpickled (stands for any code a planted file could run)."""
    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('payload ran')",)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Payload()))


def digits_set(folder: Path, method: str = "random", ipc: int = 10) -> Path:
    """A valid digits set made by the code under test."""
    import condense
    from condense.data import load_dataset
    from condense.methods import create_condenser

    path = folder / f"digits-{method}.h5"
    s = create_condenser(method, "quick").condense(load_dataset("digits", "train"), ipc, seed=0)
    condense.save(s, path)
    return path


def edit(path: Path, fn) -> Path:
    """Edit a set with plain h5py, then re-seal it: the seal proves integrity, not origin."""
    import h5py

    from condense.store import reseal

    with h5py.File(path, "r+") as f:
        fn(f)
    reseal(path)
    return path


def clone(src: Path, dst: Path, skip=(), after=None) -> Path:
    """A copy of ``src`` rebuilt object by object (``skip`` left out, ``after(f)`` adds), sealed."""
    import h5py

    from condense.store import reseal

    with h5py.File(src, "r") as s, h5py.File(dst, "w", userblock_size=512, libver=("v110", "latest")) as d:
        for k, v in s.attrs.items():
            d.attrs[k] = v
        for name in s:
            if name not in skip:
                s.copy(s[name], d, name=name)
        if after is not None:
            after(d, s)
    reseal(dst)
    return dst


def _copy_attrs(src, dst) -> None:
    for k, v in src.attrs.items():
        dst.attrs[k] = v


def set_attr(key, value):
    def fn(f):
        f.attrs[key] = value
    return fn


def write_idx(path: Path, arr: np.ndarray, compress: bool = False) -> None:
    """An idx file (the MNIST format): magic, big-endian dims, raw uint8 data."""
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = head + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def fake_mnist(root: Path, compress: bool = False, n_train: int = 5200, n_test: int = 200) -> Path:
    """A small MNIST-layout dataset (sparse random strokes) under ``root/MNIST/raw``."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):  # a class-dependent bar, so the data is learnable
            c = y[i]
            x[i, 4 + 2 * c:6 + 2 * c, 4:24] = 200 + rng.integers(0, 50)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8), compress)
    return root


def fake_cifar_folder(root: Path) -> Path:
    """A tiny ImageFolder ``root/cifar10/{train,test}/<class>/`` of valid 32×32 JPEGs."""
    from PIL import Image

    for split in ("train", "test"):
        for c in range(10):
            d = root / "cifar10" / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((32, 32, 3), 20 * c, np.uint8)).save(d / "0000.jpg")
    return root


def fake_tu(root: Path, name: str = "TOY", graphs: int = 40) -> Path:
    """A small TU-format graph dataset: two classes of paths and cycles, with node labels."""
    raw = root / "TUDataset" / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    edges, indicator, node_labels, graph_labels = [], [], [], []
    node = 1
    for g in range(graphs):
        cls = g % 2
        n = 4 + g % 3
        ids = list(range(node, node + n))
        pairs = list(zip(ids, ids[1:])) + ([(ids[-1], ids[0])] if cls else [])
        for a, b in pairs:
            edges += [(a, b), (b, a)]
        indicator += [g + 1] * n
        node_labels += [(i + cls) % 3 for i in range(n)]
        graph_labels.append(cls)
        node += n
    (raw / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / f"{name}_graph_indicator.txt").write_text("".join(f"{i}\n" for i in indicator))
    (raw / f"{name}_node_labels.txt").write_text("".join(f"{i}\n" for i in node_labels))
    (raw / f"{name}_graph_labels.txt").write_text("".join(f"{i}\n" for i in graph_labels))
    return root


def _records(path: Path) -> list[dict]:
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def composing_set(c: int, side: int):
    """``c`` images of ``c`` classes in one init batch with ``c`` standardized compensators: a valid set
    that composes ``c + c²`` training instances from ``2c`` stored items."""
    import torch

    from condense.format import SyntheticSet

    return SyntheticSet(kind="images", method="infer", ipc=2, num_classes=c, class_names=[str(i) for i in range(c)],
                        source_dataset="digits", source_fingerprint="f" * 32, seed=0,
                        images=torch.zeros(c, 1, side, side, dtype=torch.uint8), labels=torch.arange(c),
                        mean=(0.5,), std=(0.5,), compensator_encoding="standardized",
                        compensators={"values": torch.zeros(c, 1, side, side), "batch": torch.zeros(c, dtype=torch.long),
                                      "image_batch": torch.zeros(c, dtype=torch.long)})


def retype(path: Path, where: str, dtype: str) -> Path:
    """Store dataset ``where`` as ``dtype`` (values cast), its recorded storage bytes made to agree, and
    re-seal: what an attacker with h5py would do to make a foreign dtype look legitimate."""
    import json

    def fn(f):
        data, attrs = f[where][()], dict(f[where].attrs)
        before = data.nbytes
        del f[where]
        new = f.create_dataset(where, data=data.astype(dtype))
        for k, v in attrs.items():
            new.attrs[k] = v
        grow = new[()].nbytes - before
        sizes = json.loads(f.attrs["storage_bytes"])
        sizes[where.split("/")[0]] += grow
        sizes["total"] += grow
        f.attrs["storage_bytes"] = json.dumps(sizes, sort_keys=True)
    return edit(path, fn)
