"""Tests for assistant.evals.hallucination and its rows (assistant.evals.datasets): HaluEval and
generic {question, context, answer, label} files, the rows reported, the flagging scores."""

import json
from pathlib import Path

import pytest

from assistant.evals.datasets import EvalDataError, FaithfulnessItem, load_faithfulness
from assistant.evals.hallucination import evaluation_rows, flagging_scores


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_generic_rows_keep_their_label(tmp_path: Path) -> None:
    rows = [
        {"question": "Q1", "context": "C1", "answer": "A1", "label": 1},
        {"question": "Q2", "context": "C2", "answer": "A2", "label": 0},
    ]
    items = load_faithfulness(_write(tmp_path / "set.jsonl", rows))
    assert items == [
        FaithfulnessItem(0, "Q1", "C1", "A1", True),
        FaithfulnessItem(1, "Q2", "C2", "A2", False),
    ]
    assert evaluation_rows(items, None, 0) == [0, 1]


def test_halueval_row_gives_a_faithful_and_an_unfaithful_answer(tmp_path: Path) -> None:
    row = {"knowledge": "K", "question": "Q", "right_answer": "R", "hallucinated_answer": "H"}
    items = load_faithfulness(_write(tmp_path / "halu.jsonl", [row]))
    assert [(item.answer, item.faithful, item.halueval) for item in items] == [
        ("R", True, True),
        ("H", False, True),
    ]


def test_only_the_reported_halueval_rows_are_evaluated() -> None:
    items = [FaithfulnessItem(row, "q", "c", "a", True, halueval=True) for row in (5, 999, 1000)]
    assert evaluation_rows(items, None, 0) == [5, 999]
    assert len(evaluation_rows(items, 1, 0)) == 1


@pytest.mark.parametrize("label", [2, "1", True])
def test_bad_label_names_the_line(tmp_path: Path, label: object) -> None:
    rows = [{"question": "Q", "context": "C", "answer": "A", "label": label}]
    with pytest.raises(EvalDataError, match=r"set.jsonl line 1: field 'label' must be 0 or 1"):
        load_faithfulness(_write(tmp_path / "set.jsonl", rows))


def test_flagging_scores() -> None:
    # Two unfaithful answers (one flagged), two faithful ones (one flagged by mistake).
    scores = flagging_scores([True, False, True, False], [True, True, False, False])
    assert scores == {
        "accuracy": 0.5,
        "balanced_accuracy": 0.5,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
    }
    unbalanced = flagging_scores([True, True, True, False], [True, True, True, False])
    assert unbalanced["balanced_accuracy"] == 1.0
