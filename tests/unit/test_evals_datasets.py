"""Tests for assistant.evals.datasets: loaders on good and malformed files, and sampling."""

import json
from pathlib import Path

import pytest

from assistant import errors
from assistant.evals.datasets import (
    EvalDataError,
    HaluItem,
    QAItem,
    balanced_sample,
    load_beir_qrels,
    load_beir_queries,
    load_halueval,
    load_qa_items,
    read_jsonl,
    select_articles,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*rows: object) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


# --------------------------------------------------------------------------------------------
# read_jsonl and its errors
# --------------------------------------------------------------------------------------------


def test_read_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.jsonl", '{"a": 1}\n\n   \n{"a": 2}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2})]


def test_read_jsonl_tolerates_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1})]


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "queries.jsonl", '{"_id": "1", "text": "x"}\n\n{"_id": "3" "text": 1}\n'
    )
    with pytest.raises(EvalDataError) as caught:
        load_beir_queries(path)
    assert str(caught.value) == f"{path} line 3: invalid JSON (Expecting ',' delimiter)"


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.jsonl", jsonl({"question": "q?", "answers": ["a"]}, {"id": "2"}))
    with pytest.raises(EvalDataError) as caught:
        load_qa_items(path)
    assert str(caught.value) == f"{path} line 2: missing field 'question'"


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.jsonl", "")
    with pytest.raises(EvalDataError) as caught:
        list(read_jsonl(path))
    assert str(caught.value) == f"{path}: file is empty"


def test_blank_lines_only_count_as_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "blank.jsonl", "\n  \n\n")
    with pytest.raises(EvalDataError, match=r"blank\.jsonl: file is empty"):
        load_halueval(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    with pytest.raises(EvalDataError) as caught:
        load_qa_items(path)
    assert str(caught.value) == f"{path}: no such file"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="is a directory"):
        load_halueval(tmp_path)


def test_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "list.jsonl", '{"a": 1}\n[1, 2]\n')
    with pytest.raises(EvalDataError, match=r"list.jsonl line 2: expected a JSON object, got list"):
        list(read_jsonl(path))


def test_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(EvalDataError, match=r"latin1.jsonl line 2: not valid UTF-8"):
        list(read_jsonl(path))


def test_eval_data_error_is_a_user_error_and_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError) as caught:
        load_qa_items(tmp_path / "nope.jsonl")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, errors.AssistantError)


# --------------------------------------------------------------------------------------------
# BEIR
# --------------------------------------------------------------------------------------------


def test_load_beir_queries(tmp_path: Path) -> None:
    path = write(
        tmp_path / "q.jsonl", jsonl({"_id": "0", "text": "claim"}, {"_id": 7, "text": "t"})
    )
    assert load_beir_queries(path) == {"0": "claim", "7": "t"}


def test_beir_queries_wrong_type_and_duplicates(tmp_path: Path) -> None:
    wrong = write(tmp_path / "w.jsonl", jsonl({"_id": "0", "text": 5}))
    with pytest.raises(EvalDataError, match=r"w.jsonl line 1: field 'text' must be a string"):
        load_beir_queries(wrong)
    duplicated = write(
        tmp_path / "d.jsonl", jsonl({"_id": "0", "text": "a"}, {"_id": 0, "text": "b"})
    )
    with pytest.raises(
        EvalDataError, match=r"d.jsonl line 2: duplicate _id '0' \(first on line 1\)"
    ):
        load_beir_queries(duplicated)


def test_load_beir_qrels_with_header(tmp_path: Path) -> None:
    path = write(
        tmp_path / "qrels.tsv", "query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t2\n3\td1\t0\n"
    )
    assert load_beir_qrels(path) == {"1": {"d1": 1, "d2": 2}, "3": {"d1": 0}}


def test_load_beir_qrels_without_header(tmp_path: Path) -> None:
    path = write(tmp_path / "qrels.tsv", "1\td1\t1\r\n\n2\td9\t1\n")
    assert load_beir_qrels(path) == {"1": {"d1": 1}, "2": {"d9": 1}}


def test_qrels_bad_rows_name_line(tmp_path: Path) -> None:
    short = write(tmp_path / "short.tsv", "query-id\tcorpus-id\tscore\n1\td1\t1\n1 d2 1\n")
    with pytest.raises(EvalDataError, match=r"short.tsv line 3: expected 3 tab-separated fields"):
        load_beir_qrels(short)
    not_int = write(tmp_path / "score.tsv", "1\td1\t1\n1\td2\thigh\n")
    with pytest.raises(EvalDataError, match=r"score.tsv line 2: score 'high' is not an integer"):
        load_beir_qrels(not_int)
    duplicate = write(tmp_path / "dup.tsv", "1\td1\t1\n1\td1\t2\n")
    with pytest.raises(EvalDataError, match=r"dup.tsv line 2: duplicate pair"):
        load_beir_qrels(duplicate)


def test_qrels_header_only_and_empty(tmp_path: Path) -> None:
    header_only = write(tmp_path / "h.tsv", "query-id\tcorpus-id\tscore\n")
    with pytest.raises(EvalDataError, match=r"h.tsv: no qrels rows after the header"):
        load_beir_qrels(header_only)
    with pytest.raises(EvalDataError, match=r"e.tsv: file is empty"):
        load_beir_qrels(write(tmp_path / "e.tsv", ""))


# --------------------------------------------------------------------------------------------
# SQuAD 2.0 style QA
# --------------------------------------------------------------------------------------------


def test_load_qa_items_accepts_squad2_rows(tmp_path: Path) -> None:
    rows = [
        {
            "id": "q1",
            "question": "When?",
            "doc_id": "Oil#0",
            "title": "Oil",
            "is_impossible": False,
            "answers": [{"text": "1973", "first_match_start": 4}, {"text": "October 1973"}],
        },
        {"id": "q2", "question": "Who?", "is_impossible": True, "answers": []},
    ]
    items = load_qa_items(write(tmp_path / "qa.jsonl", jsonl(*rows)))
    assert items == [
        QAItem("q1", "When?", ("1973", "October 1973"), False, "Oil#0", "Oil"),
        QAItem("q2", "Who?", (), True, None, None),
    ]


def test_load_qa_items_defaults(tmp_path: Path) -> None:
    rows = [
        {"question": "A?", "answers": ["x", "y"]},  # strings; no id; no is_impossible
        {"question": "B?", "answers": []},  # is_impossible defaults to "no answers"
        {"question": "C?", "is_impossible": True},  # answers may be left out when impossible
        {"question": "D?", "answers": {"text": ["z"], "answer_start": [0]}},  # HF layout
    ]
    items = load_qa_items(write(tmp_path / "qa.jsonl", "\n" + jsonl(*rows)))
    assert [item.id for item in items] == ["2", "3", "4", "5"]  # line numbers (line 1 blank)
    assert [item.answers for item in items] == [("x", "y"), (), (), ("z",)]
    assert [item.is_impossible for item in items] == [False, True, True, False]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q"}, "missing field 'answers'"),
        ({"question": "q", "answers": "x"}, "field 'answers' must be a list, got string"),
        ({"question": "q", "answers": [3]}, r"answers\[0\] must be a string or an object"),
        (
            {"question": "q", "answers": ["a"], "is_impossible": True},
            "'is_impossible' is true but 'answers' is not empty",
        ),
        (
            {"question": "q", "answers": [], "is_impossible": False},
            "'is_impossible' is false but 'answers' is empty",
        ),
        (
            {"question": "q", "answers": [], "is_impossible": "yes"},
            "field 'is_impossible' must be true or false",
        ),
        ({"question": 1, "answers": ["a"]}, "field 'question' must be a string, got number"),
    ],
)
def test_load_qa_items_rejects_bad_rows(tmp_path: Path, row: object, message: str) -> None:
    path = write(tmp_path / "qa.jsonl", jsonl({"question": "ok?", "answers": ["a"]}, row))
    with pytest.raises(EvalDataError, match=rf"qa.jsonl line 2: {message}"):
        load_qa_items(path)


def test_load_qa_items_rejects_duplicate_ids(tmp_path: Path) -> None:
    rows = [{"id": "a", "question": "1?", "answers": ["x"]}] * 2
    with pytest.raises(EvalDataError, match=r"qa.jsonl line 2: duplicate id 'a'"):
        load_qa_items(write(tmp_path / "qa.jsonl", jsonl(*rows)))


# --------------------------------------------------------------------------------------------
# HaluEval
# --------------------------------------------------------------------------------------------


def test_load_halueval(tmp_path: Path) -> None:
    row = {"knowledge": "K", "question": "Q", "right_answer": "R", "hallucinated_answer": "H"}
    items = load_halueval(write(tmp_path / "halu.jsonl", jsonl(row)))
    assert items == [HaluItem("K", "Q", "R", "H")]


def test_load_halueval_missing_field(tmp_path: Path) -> None:
    row = {"knowledge": "K", "question": "Q", "right_answer": "R"}
    with pytest.raises(
        EvalDataError, match=r"halu.jsonl line 1: missing field 'hallucinated_answer'"
    ):
        load_halueval(write(tmp_path / "halu.jsonl", jsonl(row)))


# --------------------------------------------------------------------------------------------
# balanced_sample
# --------------------------------------------------------------------------------------------


def make_items(answerable: int, unanswerable: int) -> list[QAItem]:
    # Interleave the two kinds so "stable order" is distinguishable from "grouped by kind".
    items = []
    for index in range(max(answerable, unanswerable)):
        if index < answerable:
            items.append(QAItem(f"a{index}", "q", ("x",), False, None, None))
        if index < unanswerable:
            items.append(QAItem(f"u{index}", "q", (), True, None, None))
    return items


def test_balanced_sample_is_half_and_half() -> None:
    sample = balanced_sample(make_items(50, 50), limit=10, seed=1)
    assert len(sample) == 10
    assert sum(item.is_impossible for item in sample) == 5


def test_balanced_sample_odd_limit_favours_answerable() -> None:
    sample = balanced_sample(make_items(50, 50), limit=7, seed=1)
    assert sum(not item.is_impossible for item in sample) == 4
    assert sum(item.is_impossible for item in sample) == 3


def test_balanced_sample_fills_from_the_other_side() -> None:
    sample = balanced_sample(make_items(20, 2), limit=10, seed=3)
    assert sum(item.is_impossible for item in sample) == 2
    assert sum(not item.is_impossible for item in sample) == 8
    sample = balanced_sample(make_items(1, 20), limit=10, seed=3)
    assert sum(not item.is_impossible for item in sample) == 1
    assert len(sample) == 10


def test_balanced_sample_is_deterministic_and_keeps_input_order() -> None:
    items = make_items(100, 100)
    first = balanced_sample(items, limit=20, seed=42)
    assert first == balanced_sample(items, limit=20, seed=42)
    assert first != balanced_sample(items, limit=20, seed=43)
    positions = [items.index(item) for item in first]
    assert positions == sorted(positions)


def test_balanced_sample_larger_limit_is_a_superset() -> None:
    items = make_items(100, 100)
    small = balanced_sample(items, limit=10, seed=5)
    large = balanced_sample(items, limit=40, seed=5)
    assert set(small) <= set(large)


def test_balanced_sample_limit_beyond_size_and_zero() -> None:
    items = make_items(3, 2)
    assert balanced_sample(items, limit=100, seed=0) == items
    assert balanced_sample(items, limit=0, seed=0) == []
    with pytest.raises(ValueError, match="must not be negative"):
        balanced_sample(items, limit=-1, seed=0)


# --------------------------------------------------------------------------------------------
# select_articles
# --------------------------------------------------------------------------------------------


def titled(*titles: str | None) -> list[QAItem]:
    return [
        QAItem(f"q{index}", "q", (), True, f"{title}#0", title)
        for index, title in enumerate(titles)
    ]


def test_select_articles_keeps_the_titles_in_file_order() -> None:
    items = titled("Warsaw", "Oxygen", "Jacksonville,_Florida", None, "Warsaw")
    chosen = select_articles(items, ["Warsaw", "Jacksonville,_Florida"])
    assert [item.id for item in chosen] == ["q0", "q2", "q4"]


def test_select_articles_without_titles_keeps_everything() -> None:
    items = titled("Warsaw", None)
    assert select_articles(items, []) == items


def test_select_articles_refuses_an_unknown_title() -> None:
    with pytest.raises(EvalDataError, match="'Warsw'"):
        select_articles(titled("Warsaw"), ["Warsaw", "Warsw"])


# --------------------------------------------------------------------------------------------
# The real data sets, when present
# --------------------------------------------------------------------------------------------


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared evaluation data not found at {path}")
    return path


def test_real_squad2_questions_load() -> None:
    items = load_qa_items(require(SHARED_DATA / "squad2-dev" / "questions.jsonl"))
    # Counts published in shared/data/README.md.
    assert len(items) == 7042
    assert sum(item.is_impossible for item in items) == 3641


def test_real_scifact_queries_and_qrels_load() -> None:
    queries = load_beir_queries(require(SHARED_DATA / "scifact" / "queries_train.jsonl"))
    qrels = load_beir_qrels(require(SHARED_DATA / "scifact" / "qrels" / "train.tsv"))
    assert len(queries) == 809
    assert set(qrels) <= set(queries)


def test_real_halueval_loads() -> None:
    items = load_halueval(require(SHARED_DATA / "halueval-qa" / "qa_data.jsonl"))
    assert len(items) == 5000
    assert all(item.right_answer for item in items[:50])
