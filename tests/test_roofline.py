"""The evaluator bench's roofline: a step's FLOPs counted right, the share of time inside convolutions a
fraction, and the bench printing both per case."""
from __future__ import annotations

import json
from statistics import median

import pytest
import torch

from benchmarks.roofline import conv_share, roofline, step_flops


def test_a_steps_flops_are_the_forward_and_backward_multiply_adds():
    n, h, w = 4, 8, 8
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(5 * h * w, 10))
    x, y = torch.randn(n, 3, h, w), torch.randint(0, 10, (n,))
    conv = 2 * n * 5 * 3 * 9 * h * w          # forward multiply-adds ×2
    linear = 2 * n * 5 * h * w * 10
    # backward: the convolution's weight gradient only (the input needs none), the linear layer's input
    # and weight gradients
    assert step_flops(model, x, y) == 2 * conv + 3 * linear
    assert all(p.grad is None for p in model.parameters())   # the count leaves no gradients behind


def test_the_share_inside_convolutions_is_a_fraction_and_follows_the_model():
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    convs = torch.nn.Sequential(*[torch.nn.Conv2d(3, 3, 3, padding=1) for _ in range(4)], torch.nn.Flatten(),
                                torch.nn.Linear(3 * 16 * 16, 10))
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))
    a, b = conv_share(convs, x, y, steps=3), conv_share(mlp, x, y, steps=3)
    assert 0.0 < a <= 1.0 and b == 0.0
    r = roofline(convs, x, y, train_seconds_per_step=0.5, steps=2)
    assert r["achieved_gflops"] == r["step_gflop"] / 0.5 and 0.0 <= r["outside_conv_fraction"] < 1.0


def test_the_bench_prints_a_roofline_per_case(capsys):
    from benchmarks.bench_evaluator import main

    assert main(["--allocator", "as-is", "--cases", "digits:1", "--epochs", "2", "--checkpoints", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "features=" in out and "GFLOP per step" in out and "outside convolutions" in out


def test_profile_step_sorts_operators_into_groups_and_runs_eagerly(capsys):
    """Backward convolutions are not read as forward ones (the name holds both), the compiled graphs'
    fused kernels are their own group, and a tiny eager profile prints one row."""
    from benchmarks.profile_step import group_of, main
    assert group_of("aten::convolution_backward") == "conv backward"
    assert group_of("aten::mkldnn_convolution") == "conv forward"
    assert group_of("aten::native_group_norm_backward") == "normalisation"
    assert group_of("## Call CompiledFxGraph abc") == "compiled graph (fused)"
    assert group_of("aten::threshold_backward") == "activation"
    main(["--shape", "1", "8", "8", "--batch", "4", "--steps", "1", "--no-compile"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("convnet (1, 8, 8) batch 4") and [x.split()[0] for x in out[2:]] == ["eager"]


def test_the_bench_trains_graph_students_against_a_plain_pyg_loop(capsys, tmp_path):
    """A graph case gives one row per GNN: the suite and the plain loop take the same optimizer steps,
    both select on validation, and the ratios are reference over suite."""
    from benchmarks.bench_evaluator import main
    from benchmarks.bench_graphs import run_graph_case

    rows = run_graph_case("MUTAG", 5, epochs=3)
    assert [r["arch"] for r in rows] == ["gcn", "gin"]
    for r in rows:
        assert r["suite"]["steps"] == r["reference"]["steps"] == 3   # 10 graphs, batch 32: one step an epoch
        assert 0 <= r["suite"]["acc"] <= 100 and 0 <= r["reference"]["acc"] <= 100
        assert r["ratio_per_step"] == pytest.approx((r["reference"]["train_seconds"] / 3) / (r["suite"]["train_seconds"] / 3))
    main(["--allocator", "as-is", "--cases", "MUTAG:5", "--epochs", "2", "--repeat", "2", "--json", str(tmp_path / "g.jsonl")])
    out = capsys.readouterr().out
    assert "graph case" in out and out.count("MUTAG:5 gcn") == 2 and out.count("MUTAG:5 gin") == 2 and "ref acc" not in out
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert [(r["arch"], r["repeat"]) for r in rows] == [("gcn", 0), ("gin", 0), ("gcn", 1), ("gin", 1)]
    medians = {line.split()[1]: float(line.split()[-1]) for line in out.splitlines() if line.strip().startswith("median")}
    assert set(medians) == {"gcn", "gin"}    # the per-step median of each architecture's runs
    for arch, m in medians.items():
        assert m == pytest.approx(median(r["ratio_per_step"] for r in rows if r["arch"] == arch), abs=0.006)


def test_the_reference_loop_gives_the_same_run_in_its_own_process():
    """``--allocator suite-heap`` runs the reference loop in a fresh process (glibc's default allocator):
    the same set, model and seed there, so only the seconds may differ."""
    from benchmarks.bench_evaluator import reference_case, reference_in_child
    here, apart = reference_case("digits", 1, 2, 0), reference_in_child("digits", 1, 2, 0, "cpu")
    assert here["steps"] == apart["steps"] == 3 and here["acc"] == apart["acc"]
