"""Adapter ``mirage``: the official Mirage script (frigategnn/Mirage, ``NCI1/graph-nci-finalize-reduce-curr.py``
with ``DD/model/gnns_edge2.py``) beside the suite's Mirage under ``mirage-official`` (the official split,
GNN and training), under the suite's own ``graph`` protocol, and the structure-only ``node-count``.

The official script runs as it is, in a patched temporary copy, on a copy of the same TU raw files;
it needs ``ogb``, ``pyfpgrowth`` and ``networkx`` (``pip install ogb pyfpgrowth networkx``). Its
per-seed test ROC-AUC at the best validation ROC-AUC is read from what it prints.

Probes per dataset and support setting: tree-sets per class after the shared-set filter (exact), the
test ROC-AUC of each of the 10 seeds against ``mirage-official`` (statistical) and against the
suite's protocol (statistical; expected to differ, and named when it does).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from .harness import CrosscheckError, Probe, Substitution, patched_copy

OFFICIAL = "frigategnn/Mirage"
SCRIPT = "NCI1/graph-nci-finalize-reduce-curr.py"
SEEDS = tuple(range(1, 11))          # the official use_seed
#: the official supports: NCI1's script tries 440/570 then 420/550; MUTAG has no script (9/32, one step)
SUPPORTS = {"NCI1": ((440, 570), (420, 550)), "MUTAG": ((9, 32),)}
ARCHS = {"gcn": "GCNConv", "gin": "GINConv"}
PROGRESS = re.compile(r"^seed +\d+ Epoch: (0|300),|::::::threshold_array")   # what the script prints per seed

SUBSTITUTIONS = (
    Substitution("this-to-self", "DD/model/gnns_edge2.py", "this", "self", "PyG 2.5 and later read a layer's "
                 "message() signature and take its first parameter for the instance only when it is named self; the "
                 "official layers call it this", count=0),
    Substitution("no-ogb-datasets", SCRIPT, "from ogb.graphproppred import PygGraphPropPredDataset",
                 "PygGraphPropPredDataset = None", "the OGB dataset class serves only the ogbg datasets, which "
                 "are not crosschecked; the OGB encoders the models use still come from ogb", count=0),
    Substitution("index-features-for-every-set", SCRIPT, "if datasetname == 'NCI1':#",
                 "if datasetname in ('NCI1', 'MUTAG'):#", "the NCI1 preparation (node label index, every edge "
                 "attribute 1) for MUTAG too: MUTAG's four one-hot bond labels do not fit OGB's BondEncoder (3 tables)"),
)


def substitutions_for(dataset: str, supports: tuple[tuple[int, int], ...], archs) -> tuple[Substitution, ...]:
    """The generic substitutions, then the run's: its dataset, its support steps, its GNNs."""
    first = supports[0]
    return SUBSTITUTIONS + (
        Substitution("dataset", SCRIPT, "datasetname = 'NCI1'\n", f"datasetname = {dataset!r}\n",
                     f"the dataset to run: {dataset}"),
        Substitution("supports", SCRIPT, "threshold_class_dict  = {0:460\n                         ,1:590\n",
                     f"threshold_class_dict  = {{0:{first[0] + 20}\n                         ,1:{first[1] + 20}\n",
                     f"the first support step {first[0]}/{first[1]} (the script lowers both by 20 before its first step)"),
        Substitution("steps", SCRIPT, "num_steps=2\n", f"num_steps={len(supports)}\n",
                     f"{len(supports)} support step(s): {', '.join(f'{a}/{b}' for a, b in supports)}"),
        Substitution("gnns", SCRIPT, "for gnn_type in ['GATConv', 'GCNConv', 'GINConv']:",
                     f"for gnn_type in {[ARCHS[a] for a in archs]!r}:", "only the GNNs crosschecked"),
    )


def parse(out: str) -> list[dict]:
    """The official script's blocks: per (GNN, support step) the tree-sets per class and per-seed test AUC %."""
    blocks, seeds, counts, classid = [], [], {}, None
    for line in out.splitlines():
        if m := re.match(r"classid\s+(\d+)$", line.strip()):
            classid = int(m.group(1))
        elif (m := re.match(r"count\s+(\d+)$", line.strip())) and classid is not None:
            counts[classid] = int(m.group(1))
        elif m := re.search(r"seed (\d+) Epoch: 300,.*Actual test acc: ([\d.]+)", line):
            seeds.append(100.0 * float(m.group(2)))
        elif m := re.search(r"::::::threshold_array\s+\[(\d+), (\d+)\]", line):   # a step's results
            blocks.append({"supports": (int(m.group(1)), int(m.group(2))), "tree_sets": [counts.get(0), counts.get(1)],
                           "auc": seeds})
            seeds, counts = [], {}
        elif (m := re.match(r"gnn_type\s+(\w+)$", line.strip())) and blocks and "gnn" not in blocks[-1]:
            blocks[-1]["gnn"] = m.group(1)
    return blocks


def parse_supports(values) -> tuple[tuple[int, int], ...]:
    """``["440/570", "420/550"]`` -> ``((440, 570), (420, 550))``; a malformed step is one line."""
    steps = []
    for v in values:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(v))
        if m is None or min(int(m.group(1)), int(m.group(2))) < 1:
            raise CrosscheckError(f"--supports: {v!r} is not a support step A/B of two positive integers")
        steps.append((int(m.group(1)), int(m.group(2))))
    for (a, b), (c, d) in zip(steps, steps[1:]):
        if (a - c, b - d) != (20, 20):
            raise CrosscheckError(f"--supports: the official script lowers both supports by 20 a step; "
                                  f"{c}/{d} does not follow {a}/{b}")
    return tuple(steps)


def run_official(copy: Path, dataset: str, raw: Path, timeout: float, say=print) -> str:
    """Run the patched script on a copy of the TU raw files; its printed output. The script prints at
    the start and end of each seed's 300 epochs: those lines are passed on as progress (``say``)."""
    data = copy / "NCI1" / "data" / "TUDataset" / dataset / "raw"
    shutil.copytree(Path(raw), data)
    env = {**os.environ, "PYTHONPATH": str(copy / "DD" / "model"), "CUDA_VISIBLE_DEVICES": "",
           "PYTHONUNBUFFERED": "1"}
    out, err = [], []
    with subprocess.Popen([sys.executable, Path(SCRIPT).name], cwd=copy / "NCI1", env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        drain = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
        drain.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                out.append(line)
                if PROGRESS.search(line):
                    say(f"official {dataset}: {line.strip()[:110]}")
            proc.wait()
        finally:
            timer.cancel()
            drain.join(timeout=10)
    if proc.returncode != 0:
        tail = ("".join(err).strip().splitlines() or ["killed after the timeout" if proc.returncode < 0 else "no output"])[-1]
        raise CrosscheckError(f"the official script failed on {dataset}: {tail}")
    return "".join(out)


def ours(dataset: str, supports: tuple[int, int], arch: str) -> dict:
    """Our Mirage at ``supports`` under mirage-official (official split) and under the suite's protocol."""
    from condense.data import load_dataset
    from condense.evaluate import evaluate
    from condense.methods import create_condenser
    from condense.structure import fit_and_score

    out = {}
    for label, name, model, protocol in (("mirage-official", f"{dataset}@mirage", f"{arch}-mirage", "mirage-official"),
                                         ("suite", dataset, arch, "graph")):
        train, test = load_dataset(name, "train"), load_dataset(name, "test")
        s = create_condenser("mirage", supports=supports).condense(train, 1, seed=0)
        res = evaluate(s, test, arch=model, protocol=protocol, seeds=list(SEEDS))
        out[label] = {"auc": [r.extra["roc_auc"] for r in res.runs],
                      "tree_sets": [int((s.graphs["labels"] == c).sum()) for c in range(s.num_classes)],
                      "node_count": fit_and_score("node-count", train, test)["roc_auc"]}
    return out


def run(official_dir: Path, options) -> tuple[list[Probe], dict]:
    """Per dataset: the official script in its own patched copy, then ours on the same supports."""
    from condense.data.graphs import graph_availability

    probes, inputs = [], {"seeds": list(SEEDS), "runs": []}
    for dataset in options.datasets or ("MUTAG", "NCI1"):
        raw = graph_availability(dataset)["where"]
        if raw is None:
            raise CrosscheckError(f"{dataset}: no TU raw files under CONDENSE_DATA")
        supports = parse_supports(options.supports) if getattr(options, "supports", None) else SUPPORTS[dataset]
        archs = options.archs or ("gcn",)
        with patched_copy(official_dir, substitutions_for(dataset, supports, archs), say=options.say) as copy:
            blocks = parse(run_official(copy, dataset, raw, options.timeout, say=options.say))
        for b in blocks:
            arch = next(a for a, g in ARCHS.items() if g == b.get("gnn"))
            mine = ours(dataset, b["supports"], arch)
            where = f"{dataset} {arch} supports {b['supports'][0]}/{b['supports'][1]}"
            official = b["auc"]
            probes += [
                Probe(f"{where}: tree-sets per class", b["tree_sets"], mine["mirage-official"]["tree_sets"],
                      note="official: pyfpgrowth on its own tree labels; ours: exact Eclat"),
                Probe(f"{where}: test ROC-AUC, official vs mirage-official", official,
                      mine["mirage-official"]["auc"], kind="stat", tolerance=1.0),
                Probe(f"{where}: test ROC-AUC, official vs the suite's protocol", official, mine["suite"]["auc"],
                      kind="stat", tolerance=1.0, note="the suite's split, GNNs and training"),
                Probe(f"{where}: test ROC-AUC, official vs node-count (no model) on the official split", official,
                      [mine["mirage-official"]["node_count"]], kind="stat", tolerance=1.0,
                      note="the score the official figure tracks"),
            ]
            inputs["runs"].append(where)
    return probes, inputs
