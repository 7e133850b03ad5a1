"""MTT (condense.methods.mtt) and its expert trajectories (condense.experts): the normalised matching
loss by hand, one unrolled student step against a plain SGD step, gradients reaching the pixels and the
learned step size, the official table's rows, the expert cache (reuse, refusal, a damaged file) and a
whole condensation on digits whose set carries its learned learning rate (and its ZCA record)."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F

import condense
from condense.data import load_dataset
from condense.experts import (ExpertRecipe, NoExpertError, expert_buffer,
                              flat_params, train_expert)
from condense.format.release import check_release_parts
from condense.methods import create_condenser
from condense.methods.mtt import (MTTConfig, matching_loss, official_row,
                                  student_steps, unflatten)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDENSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_matching_loss_by_hand():
    start, target = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])
    end = torch.tensor([1.0, 2.0])
    # ‖(0, 1)‖² / ‖(−1, −1)‖² = 1 / 2
    assert float(matching_loss(end, start, target)) == pytest.approx(0.5)
    # reaching the target is zero; staying at the start is one, whatever the expert's scale
    assert float(matching_loss(target, start, target)) == 0.0
    assert float(matching_loss(start * 7, start * 7, target * 7)) == pytest.approx(1.0)


def test_one_student_step_is_plain_sgd_and_reaches_pixels_and_lr(digits):
    recipe = ExpertRecipe(width=8)
    net = recipe.model(digits.shape, 10)
    shapes = [(n, p.shape) for n, p in net.named_parameters()]
    x = digits.normalize(digits.images[:6]).clone().requires_grad_(True)
    y = digits.labels[:6]
    lr = torch.tensor(0.05, requires_grad=True)
    start = flat_params(net)
    end = student_steps(net, shapes, start.clone().requires_grad_(True), x, y, lr, 1, 6, torch.Generator(), None)
    plain = recipe.model(digits.shape, 10)
    plain.load_state_dict(net.state_dict())
    F.cross_entropy(plain(x.detach()), y).backward()
    expected = torch.cat([(p.detach() - 0.05 * p.grad).reshape(-1) for p in plain.parameters()])
    assert torch.allclose(end.detach(), expected, atol=1e-6)
    target = start + 0.01 * torch.randn_like(start)
    matching_loss(end, start, target).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert lr.grad is not None and float(lr.grad.abs()) > 0


def test_unflatten_views_in_parameter_order():
    net = ExpertRecipe(width=4).model((1, 8, 8), 3)
    flat = flat_params(net)
    named = unflatten(flat, [(n, p.shape) for n, p in net.named_parameters()])
    for (n, p) in net.named_parameters():
        assert torch.equal(named[n], p.detach())


def test_official_rows_and_fallback():
    row, note = official_row("cifar10", 10)
    assert note is None and (row["syn_steps"], row["expert_epochs"], row["max_start_epoch"], row["zca"]) == (30, 2, 20, True)
    row, note = official_row("cifar100", 1)  # the official README's command
    assert (row["syn_steps"], row["expert_epochs"], row["lr_img"], row["lr_lr"]) == (20, 3, 1000.0, 1e-5)
    row, note = official_row("mnist", 10)
    assert row["zca"] is False and "no row for mnist" in note
    got, notes = MTTConfig(zca=False).resolve("cifar10", 10)
    assert got["zca"] is False and got["lr_img"] == 1000.0 and any("zca off" in n for n in notes)
    got, notes = MTTConfig(expert_train_epochs=4).resolve("cifar10", 10)
    assert got["max_start_epoch"] == 2 and any("capped at 2" in n for n in notes)
    with pytest.raises(ValueError, match="expert_epochs 3 needs experts trained longer"):
        MTTConfig(expert_train_epochs=3, expert_epochs=3).resolve("cifar10", 10)


@pytest.mark.parametrize("field, value", [("syn_steps", 0), ("lr_img", 0.0), ("init", "zeros"), ("num_experts", 0)])
def test_config_ranges(field, value):
    with pytest.raises(ValueError, match=f"mtt.{field}"):
        MTTConfig(**{field: value})


def test_expert_cache_reuses_refuses_and_rebuilds(digits, cache):
    recipe = ExpertRecipe(width=8, epochs=2)
    x, y = digits.normalize(digits.images), digits.labels
    space = {"mean": list(digits.mean)}
    with pytest.raises(NoExpertError, match="not in the expert cache"):
        train_expert(digits, x, y, recipe, space, seed=0, device="cpu", allow_train=False)
    first = train_expert(digits, x, y, recipe, space, seed=0, device="cpu")
    assert not first.cached and first.params.shape[0] == 3
    assert not torch.equal(first.params[0], first.params[2])  # it trained
    again = train_expert(digits, x, y, recipe, space, seed=0, device="cpu", allow_train=False)
    assert again.cached and torch.equal(again.params, first.params)
    other = train_expert(digits, x, y, recipe, {"mean": [0.0]}, seed=0, device="cpu")  # another input space
    assert not other.cached
    files = sorted((cache / "experts").glob("*.pt"))
    assert len(files) == 2 and not list((cache / "experts").glob("*.partial.pt"))
    files[0].write_bytes(b"not a checkpoint")
    experts, cost = expert_buffer(digits, x, y, recipe, space, 1, device="cpu")
    assert cost.seconds > 0 and torch.isfinite(experts[0].params).all()


def test_condense_digits_stores_learned_lr_and_zca(digits, cache, tmp_path):
    cfg = dataclasses.replace(MTTConfig.preset("quick"), iterations=2, num_experts=1, expert_train_epochs=3,
                              syn_steps=2, lr_img=1.0, lr_lr=1e-4, width=8)
    s = create_condenser("mtt", "quick", **dataclasses.asdict(cfg)).condense(digits, 2, seed=0)
    assert s.kind == "images" and s.image_encoding == "model-input" and s.images.shape == (20, 1, 8, 8)
    assert s.synthetic_lr is not None and s.synthetic_lr != 0.01  # α learned, stored for lr="from-set"
    assert s.extra["resolved"]["syn_steps"] == 2 and s.teacher_seconds > 0
    assert any("no row for digits" in d and "small split" in d for d in s.deviations)
    condense.save(s, tmp_path / "mtt.h5")
    back = condense.load(tmp_path / "mtt.h5")
    assert back.synthetic_lr == pytest.approx(s.synthetic_lr)
    z = create_condenser("mtt", "quick", **{**dataclasses.asdict(cfg), "zca": True}).condense(digits, 2, seed=0)
    assert z.preprocessing["zca"]["fitted_on"] == "digits/train" and check_release_parts(z) == []


def test_learned_lr_trains_the_student_under_from_set(digits, cache):
    from condense.evaluate import evaluate
    from condense.protocols import get_protocol

    cfg = dict(iterations=1, num_experts=1, expert_train_epochs=3, syn_steps=2, lr_img=1.0, lr_lr=1e-3, width=8)
    s = create_condenser("mtt", "quick", **cfg).condense(digits, 1, seed=0)
    res = evaluate(s, load_dataset("digits", "test"), protocol=get_protocol("dc").replace(epochs=2, checkpoints=1,
                                                                                          lr="from-set"), seeds=(0,))
    assert res.protocol["lr"] == "from-set" and res.runs[0].extra["synthetic_lr"] == pytest.approx(s.synthetic_lr)


def test_sweep_no_train_refuses_a_missing_expert_in_one_line(cache, tmp_path):
    from benchmarks.api import run_sweep

    run_sweep(datasets=["digits"], methods=["mtt"], ipc=[1], seeds=[0], no_train=True, out=tmp_path / "r",
              overrides={"mtt": {"iterations": 1, "width": 8, "expert_train_epochs": 3, "syn_steps": 2}},
              no_progress=True)
    import json
    rec = [json.loads(line) for line in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert rec and rec[0]["status"] == "failed"
    assert "not in the expert cache and training is not allowed" in rec[0]["error"] and "\n" not in rec[0]["error"]


def test_reference_bench_runs_both_methods(capsys):
    from benchmarks.bench_reference_methods import main

    assert main(["--dataset-shape", "1", "8", "8", "--width", "4", "--syn-steps", "2", "--rounds", "1",
                 "--batch-real", "4", "--ipc", "1", "--allocator", "as-is"]) == 0
    out = capsys.readouterr().out
    assert "    dm " in out and "   mtt " in out and "ratio" in out
    assert re.search(r"allocator (heap|default) \(both sides\)", out)   # says which allocator both sides ran on
