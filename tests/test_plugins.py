"""A new condenser is one module: a replay-label condenser defined in this file runs in a sweep with
nothing else changed, and a third-party condenser found through its entry point runs in a sweep from
the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from condense.methods import CondenseOutput, Condenser, ReplayLabels, register_condenser
from condense.methods._common import replay_labels
from condense.methods.base import _CONDENSERS, generator
from condense.methods.baselines import image_parts, random_per_class

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ProjectionConfig:
    soft_labels: str = "replay"
    replay_epochs: int = 300
    replay_batch: int = 16


class RandomProjectionLabels(ReplayLabels, Condenser):
    """Random real images relabelled by a fixed random linear map: the smallest replay-label method."""

    name = "test-projection"
    Config = ProjectionConfig
    default_run = False

    def _condense(self, train, ipc, *, seed, device, progress):
        cfg, c = self.config, len(train.classes)
        idx = random_per_class(train.labels, c, ipc, seed)
        x = train.normalize(train.images[idx])
        w = torch.randn(x[0].numel(), c, generator=generator(seed))

        def label(views):
            return views.flatten(1) @ w

        parts = image_parts(train, idx)
        if cfg.soft_labels == "replay":
            rec, logits = replay_labels(label, x, cfg.replay_epochs, cfg.replay_batch, generator(seed + 1))
            parts.update(soft_labels=logits, soft_label_policy="replay", replay=rec, replay_batch=cfg.replay_batch)
        else:
            parts.update(soft_labels=label(x), soft_label_policy="static")
        return CondenseOutput(parts, extra={"source_indices": idx.tolist()})


@pytest.fixture
def registered():
    register_condenser(RandomProjectionLabels)
    yield RandomProjectionLabels
    _CONDENSERS.pop(RandomProjectionLabels.name)


def test_a_replay_label_condenser_defined_in_a_test_runs_in_a_sweep(registered, tmp_path):
    from benchmarks import run_sweep

    recs = run_sweep(datasets=["digits"], methods=["test-projection"], protocol="fkd", ipc=[1], seeds=[0], epochs=2,
                     archs=["convnet"], out=str(tmp_path / "out"), no_progress=True)
    (r,) = recs
    assert r["status"] == "ok", r.get("error")
    assert r["method_traits"] == {"role": "method", "labels": "soft", "byte_matched": False}
    assert r["method_config"]["replay_epochs"] == 2  # sized by for_protocol to the protocol's epochs
    assert r["code"]["condenser"]  # its own module's hash
    kd = run_sweep(datasets=["digits"], methods=["test-projection"], protocol="kd", ipc=[1], seeds=[0], epochs=2,
                   archs=["convnet"], out=str(tmp_path / "kd"), no_progress=True)
    assert kd[0]["status"] == "ok" and kd[0]["method_config"]["soft_labels"] == "static"


PLUGIN = '''
from dataclasses import dataclass

from condense.methods import CondenseOutput, Condenser
from condense.methods.baselines import image_parts


@dataclass(frozen=True)
class FirstConfig:
    pass


class FirstImages(Condenser):
    """The first IPC images of each class."""

    name = "first-images"
    Config = FirstConfig
    default_run = False

    def _condense(self, train, ipc, *, seed, device, progress):
        import torch

        idx = torch.cat([torch.nonzero(train.labels == c).view(-1)[:ipc] for c in range(len(train.classes))])
        return CondenseOutput(image_parts(train, idx))
'''


def _plugin_site(root: Path) -> Path:
    """A folder on which Python finds three plugin distributions: a working one, one that fails to
    import, and one that shadows the built-in ``random``."""
    site = root / "site"
    (site / "demo_condenser").mkdir(parents=True)
    (site / "demo_condenser" / "__init__.py").write_text(PLUGIN)
    (site / "broken_condenser.py").write_text("raise RuntimeError('this plugin is broken')\n")
    for dist, name, value in (("demo-condenser", "first-images", "demo_condenser:FirstImages"),
                              ("broken-condenser", "broken", "broken_condenser:Nothing"),
                              ("shadow-condenser", "random", "demo_condenser:FirstImages")):
        info = site / f"{dist.replace('-', '_')}-0.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
        (info / "entry_points.txt").write_text(f"[condense.condensers]\n{name} = {value}\n")
    return site


def test_a_plugin_condenser_is_found_at_start_up_and_runs_in_a_sweep(tmp_path):
    site = _plugin_site(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", "--datasets", "digits", "--methods", "first-images",
                        "random", "--ipc", "1", "--seeds", "0", "--epochs", "2", "--archs", "convnet", "--out",
                        str(out), "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if "plugin condenser" in line]
    assert any("'broken'" in n and "failed to import" in n and "this plugin is broken" in n for n in notes)
    assert any("'random'" in n and "shadows the built-in" in n for n in notes)
    assert len(notes) == 2   # one line each
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    mine = [x for x in recs if x["method"] == "first-images"]
    assert len(mine) == 1 and mine[0]["status"] == "ok"
    assert mine[0]["code"]["plugin"] == "demo-condenser 0.3"
    assert "first-images" in (out / "leaderboard.md").read_text()
    random = [x for x in recs if x["method"] == "random"]
    assert random[0]["method_traits"]["role"] == "baseline"   # the built-in, not the shadow
