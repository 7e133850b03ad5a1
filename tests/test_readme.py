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
