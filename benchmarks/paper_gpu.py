"""Paper scale on one GPU: ``python -m benchmarks.paper_gpu [--out results/paper-gpu]``.

The rows the papers report, as close as twelve minutes of one H200 allow, each written as it finishes
(a rerun resumes) and set beside the published figure (``condense/references.toml``):

1. ``cvdd``: CV-DD and SRe2L++ at IPC 10 on CIFAR-10, the paper pool (ResNet-18, ResNet-50,
   ShuffleNetV2, MobileNetV2, DenseNet-121) trained by CV-DD's recipe shortened to 8 epochs
   (``cvdd-short``), priors from the teachers' val accuracy, ResNet-18 students under ``fkd`` paper.
2. ``infer``: INFER at IPC 10, INFER's pool by its recipe at 8 epochs (``paper-short``), ResNet-18
   students under ``kd`` paper.
3. ``rs2``: RS2 at a 10 % selection ratio under ``rs2-ratio`` paper, ResNet-18.

Students run under bfloat16 autocast (``--precision bf16``) and ``torch.compile`` where it pays, with
the data on the device. What differs from the papers is printed with every row: the short teacher
recipes (the papers train 200 epochs), val priors (CV-DD computes student priors), the JPEG copy of
CIFAR-10. ``--tiny`` runs every stage at toy sizes on the embedded digits (ConvNet-sized, CPU), which
the tests use.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from condense.references import cell_verdict, load_published, row_values


@dataclass(frozen=True)
class Stage:
    name: str
    protocol: str
    methods: tuple[str, ...]
    overrides: tuple[str, ...]
    fraction: float | None = None
    differs: str = ""


def stages(tiny: bool) -> list[Stage]:
    if tiny:  # every path at toy sizes: the embedded digits, tiny teachers, a few iterations and epochs
        pool = 'cvdd.teachers=["convnet_bn","convnet_bn-w32"]'
        return [Stage("cvdd", "fkd", ("cvdd", "sre2l++"),
                      (pool, 'sre2l++.teachers=["convnet_bn","convnet_bn-w32"]', "cvdd.teacher_recipe=tiny",
                       "sre2l++.teacher_recipe=tiny", "cvdd.iterations=2", "sre2l++.iterations=2", "cvdd.prior=val",
                       "sre2l++.prior=val")),
                Stage("infer", "kd", ("infer",), ("infer.teacher_recipe=tiny", "infer.iterations=2",
                                                   'infer.teachers=["convnet_bn-w32"]')),
                Stage("rs2", "rs2-ratio", ("rs2",), (), fraction=0.1)]
    return [Stage("cvdd", "fkd", ("cvdd", "sre2l++"),
                  ("cvdd.teacher_recipe=cvdd-short", "sre2l++.teacher_recipe=cvdd-short", "cvdd.prior=val",
                   "sre2l++.prior=val"),
                  differs="teachers trained 8 epochs (the paper: 200); priors from val accuracy (the paper: "
                          "each teacher's distilled-data student)"),
            Stage("infer", "kd", ("infer",), ("infer.teacher_recipe=paper-short",),
                  differs="teachers trained 8 epochs (the paper: 200)"),
            Stage("rs2", "rs2-ratio", ("rs2",), (), fraction=0.1)]


def run(out: Path, tiny: bool, device: str, data_root: str | None) -> list[dict]:
    """Every stage as a sweep into ``out/<stage>`` (resumable); returns all their records."""
    from benchmarks.api import run_sweep
    records = []
    for st in stages(tiny):
        spec = dict(datasets=["digits" if tiny else "cifar10"], methods=list(st.methods), ipc=[2 if tiny else 10],
                    seeds=[0], protocol=st.protocol, preset="quick" if tiny else "paper",
                    archs=["convnet" if tiny else "resnet18"], overrides=st.overrides, device=device,
                    out=out / st.name, no_progress=True, data_root=data_root, checkpoints=2 if tiny else 10)
        if tiny:
            spec["epochs"] = 2
        else:
            spec.update(precision="bf16", compile=True)
        if st.fraction is not None:
            spec["fraction"] = st.fraction
        print(f"== {st.name}: {', '.join(st.methods)} under {st.protocol}" + (f" ({st.differs})" if st.differs else ""),
              flush=True)
        records += [dict(r, _stage=st.name, _differs=st.differs) for r in run_sweep(**spec)]
    return records


def report(records: list[dict]) -> list[str]:
    """One line per row: our accuracy, the published figure for the paper's cell, how the run differs."""
    refs = load_published()
    lines = []
    for r in records:
        if r.get("status") != "ok":
            lines.append(f"{r['_stage']}: {r['method']} failed: {r.get('error', '?')}")
            continue
        ours = f"{r['_stage']}: {r['method']} {r['dataset']} IPC {r['ipc']} {r['arch']} under {r['protocol']['name']}: " \
               f"{r['acc']:.2f} %"
        v = cell_verdict(refs, (r["method"], r["dataset"], r["ipc"], r["arch"]), r.get("method_config"),
                         r["protocol"], lambda ref: row_values([r], ref), "JPEG" in str(r.get("source", "")))
        if v is None:
            lines.append(ours + "; no published figure for this cell")
            continue
        lines.append(ours + f"; published {v.ref.mean:.1f} ({v.ref.cite()}): "
                     + (v.status if v.status != "not comparable" else v.why)
                     + (f"; differs: {r['_differs']}" if r["_differs"] else ""))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.paper_gpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("results/paper-gpu"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--tiny", action="store_true", help="every stage at toy sizes on digits (CPU tests)")
    args = ap.parse_args(argv)
    try:
        records = run(args.out, args.tiny, args.device, args.data_root)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    lines = report(records)
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
