"""The paper-scale GPU script: every stage runs at toy sizes on the CPU, and the full-size stages name
the recipes, protocols and students they promise."""
from __future__ import annotations

from benchmarks import paper_gpu


def test_full_size_stages_are_the_papers_cells():
    by = {s.name: s for s in paper_gpu.stages(tiny=False)}
    assert set(by) == {"cvdd", "infer", "rs2"}
    assert by["cvdd"].protocol == "fkd" and by["cvdd"].methods == ("cvdd", "sre2l++")
    assert "cvdd.teacher_recipe=cvdd-short" in by["cvdd"].overrides and "8 epochs" in by["cvdd"].differs
    assert by["infer"].protocol == "kd" and "infer.teacher_recipe=paper-short" in by["infer"].overrides
    assert by["rs2"].protocol == "rs2-ratio" and by["rs2"].fraction == 0.1


def test_every_stage_runs_tiny_on_cpu_and_reports_against_the_papers(digits, tmp_path, capsys, fresh_cache):
    assert paper_gpu.main(["--tiny", "--out", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    report = (tmp_path / "report.txt").read_text().splitlines()
    assert {line.split(":")[0] for line in report} == {"cvdd", "infer", "rs2"}
    assert any(line.startswith("cvdd: sre2l++ digits IPC 2 convnet under fkd:") for line in report), report
    assert all("no published figure" in line and "failed" not in line for line in report), report
    for stage in ("cvdd", "infer", "rs2"):
        assert (tmp_path / stage / "results.jsonl").exists()
        assert f"== {stage}:" in out
    # resumable: a second run trains nothing new and reports the same rows
    assert paper_gpu.main(["--tiny", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert (tmp_path / "report.txt").read_text().splitlines() == report


def test_the_report_sets_each_row_beside_its_papers_figure():
    rec = {"status": "ok", "method": "cvdd", "dataset": "cifar10", "ipc": 10, "arch": "resnet18", "acc": 41.0,
           "protocol": {"name": "fkd", "preset": "paper"}, "method_config": {}, "source": "ImageFolder JPEG copy",
           "_stage": "cvdd", "_differs": "teachers trained 8 epochs"}
    (line,) = paper_gpu.report([rec])
    assert line.startswith("cvdd: cvdd cifar10 IPC 10 resnet18 under fkd: 41.00 %; published 44.6 (")
    assert "protocol differs" in line and line.endswith("differs: teachers trained 8 epochs")
    failed = {"status": "failed", "method": "rs2", "error": "out of memory", "_stage": "rs2", "_differs": ""}
    assert paper_gpu.report([failed]) == ["rs2: rs2 failed: out of memory"]
