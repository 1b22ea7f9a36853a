"""Tables at 80 columns: in a real pseudo-terminal and through a pipe, nothing is dropped or cut."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.tables_tree import ARMS, write_tree
from tests.support.terminal import in_terminal, through_pipe


def _plain(output: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tables") / "bn_placement"
    write_tree(root)
    return root


@pytest.mark.parametrize("run", [in_terminal, through_pipe], ids=["tty80", "pipe"])
def test_report_keeps_every_column_and_whole_labels_at_80_columns(tree, run):
    code, output = run("report", str(tree))
    text = _plain(output)
    assert code == 0, text
    assert "…" not in text  # nothing cut to an ellipsis
    for arm in ARMS:
        assert re.search(rf"^\|? ?{arm}\b", text, re.MULTILINE), (arm, text)  # the arm column
    assert "learning_rate=0.01" in text and "learning_rate=0.1" in text  # whole cell labels
    assert "0.044" in text and "0.0074" in text  # whole p-values
    assert re.search(r"\bn\b", text) and "2/0/0/1" in text  # the n and runs columns


def test_report_through_a_pipe_is_markdown(tree):
    code, output = through_pipe("report", str(tree))
    assert code == 0
    assert "| arm | cell | n | runs | mean ± std | to target |" in output
    assert "| bn_before | learning_rate=0.01 | 3 | 2/0/0/1 | 0.8150 ± 0.0184 (n=2/3) |" in output


def test_a_wide_terminal_still_gets_a_table(tree):
    code, output = in_terminal("report", str(tree), columns=200)
    assert code == 0
    assert re.search(r"bn_before\s+learning_rate=0.01\s+3\s+2/0/0/1", _plain(output))


@pytest.mark.parametrize("run", [in_terminal, through_pipe], ids=["tty80", "pipe"])
def test_datasets_and_status_never_break_a_word(tree, run):
    code, output = run("datasets")
    text = _plain(output)
    assert code == 0 and "…" not in text
    for word in ("fashion_mnist", "classification", "keras.datasets.cifar100", "regression"):
        assert word in text, word
    code, output = run("status", str(tree))
    text = _plain(output)
    assert code == 0 and "…" not in text
    assert "training.learning_rate=0.01" in text and "bn_before-lr0.01-s2" in text
    assert "incomplete" in text
