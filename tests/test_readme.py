"""The README's promises: its training script runs, and its commands are the ones CI runs."""
from __future__ import annotations

import re
import subprocess
import sys

from .conftest import REPO


def _training_script() -> str:
    text = (REPO / "README.md").read_text()
    after = text.split("<!-- training-script", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_readme_opens_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert block[0].endswith("python -m benchmarks.run --ipc 10") and "pip install" in block[0]
    assert block[1] == "python -m pytest -q"
    assert "python -m pytest -q" in (REPO / ".ci" / "run").read_text()


def test_training_script_from_readme(tmp_path):
    r = subprocess.run([sys.executable, "-m", "condense", "condense", "random", "digits", "--ipc", "10",
                        "--out", str(tmp_path / "digits-random-ipc10.h5")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    script = _training_script()
    assert len(script.strip().splitlines()) <= 20
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = re.search(r"random ipc=10: ([\d.]+)% test accuracy, (\d+) bytes", r.stdout)
    assert m, r.stdout
    assert float(m.group(1)) > 70 and int(m.group(2)) == 100 * 64 + 100 * 8


def test_the_readme_counts_every_method_module_and_hostile_case():
    """The README's methods table lists every registered condenser, its layout line every public module
    of the library, and its count of crafted hostile cases is the number there are."""
    from condense.methods import list_condensers

    from .hostile import CASES

    text = (REPO / "README.md").read_text()
    table = text.split("## Methods", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([^`]+)` \|", table, re.M))
    named = {m for m in list_condensers() if m not in listed and f"`{m}`" not in table
             and not m.startswith("imported:")}   # a release's row, registered by a sweep's --import
    assert not named, f"methods missing from the README's table: {sorted(named)}"
    layout = re.search(r"Layout: (.*?)(\n\n|$)", text, re.S).group(1)
    modules = {p.name for p in (REPO / "condense").glob("*.py") if not p.name.startswith("_")}
    assert not {m for m in modules if f"`{m}`" not in layout}, "modules missing from the README's layout line"
    assert f"runs {len(CASES)} crafted cases" in text
