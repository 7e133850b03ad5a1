"""The code on docs/adding-a-method.md runs as written: both condensers register, condense digits
and round-trip through the file format; the replay one sizes its labels to the protocol."""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

import condense
from condense.methods.base import _CONDENSERS
from condense.protocols import get_protocol

PAGE = Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md"


@pytest.fixture
def page_methods(tmp_path, monkeypatch):
    """The page's code blocks, in order, as one module of a package outside the repository."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 2
    (tmp_path / "adding_a_method.py").write_text("\n\n".join(blocks))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield importlib.import_module("adding_a_method")
    finally:
        sys.modules.pop("adding_a_method", None)
        for name in ("nearest-mean", "tiny-relabel"):
            _CONDENSERS.pop(name, None)


def test_the_pages_condensers_run_as_written(page_methods, digits, tmp_path):
    from condense.methods import create_condenser

    train = digits["train"]
    s = create_condenser("nearest-mean").condense(train, 2, seed=0)
    back = condense.load(condense.save(s, tmp_path / "a.h5"))
    assert back.method == "nearest-mean" and len(back) == 2 * len(train.classes)
    with pytest.raises(ValueError, match="nearest-mean.pool must be an integer"):
        create_condenser("nearest-mean", pool=0)
    relabel = create_condenser("tiny-relabel").for_protocol(get_protocol("fkd", "quick", epochs=3))
    s = relabel.condense(train, 1, seed=0)
    back = condense.load(condense.save(s, tmp_path / "b.h5"))
    assert back.soft_label_policy == "replay" and back.replay_epochs == 3
    static = create_condenser("tiny-relabel").for_protocol(get_protocol("kd", "quick"))
    assert static.config.soft_labels == "static"
    # its code identity hashes its own module: an edit there is another identity
    before = page_methods.NearestMean.code_identity()["condenser"]
    path = Path(page_methods.__file__)
    path.write_text(path.read_text() + "\n# an edit\n")
    assert page_methods.NearestMean.code_identity()["condenser"] != before
