"""Readers for the evaluation data sets, and a seeded balanced sampler.

The harness reads data it did not write (BEIR queries and qrels, SQuAD 2.0 style QA rows,
HaluEval QA rows). A malformed file must stop the run with ONE clear message that names the
file and the line, e.g. ``queries.jsonl line 3: invalid JSON (Expecting ',' delimiter)``,
rather than a traceback from deep inside a metric. Every such problem raises `EvalDataError`.
"""

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from assistant import errors

__all__ = [
    "EvalDataError",
    "FaithfulnessItem",
    "HaluItem",
    "QAItem",
    "balanced_sample",
    "load_beir_qrels",
    "load_beir_queries",
    "load_faithfulness",
    "load_halueval",
    "load_qa_items",
    "read_jsonl",
    "select_articles",
]

_QRELS_HEADER = ["query-id", "corpus-id", "score"]


class EvalDataError(errors.EvalDataError, ValueError):
    """An evaluation file is missing or malformed; the message names the file and line.

    It is an `assistant.errors.EvalDataError` (so the CLI reports it as a user error in one
    line) and a ValueError (the file's content is a bad value).
    """


@dataclass(frozen=True)
class QAItem:
    """One question of a SQuAD 2.0 style set; `answers` is empty when `is_impossible`."""

    id: str
    question: str
    answers: tuple[str, ...]
    is_impossible: bool
    doc_id: str | None
    title: str | None


@dataclass(frozen=True)
class HaluItem:
    """One HaluEval QA row: a question with a grounded and a hallucinated answer."""

    knowledge: str
    question: str
    right_answer: str
    hallucinated_answer: str


@dataclass(frozen=True)
class FaithfulnessItem:
    """One answer to judge against its context: `faithful` is the human (or data set) label."""

    row: int  # 0-based row of the file it came from (a HaluEval row gives two items)
    question: str
    context: str
    answer: str
    faithful: bool
    halueval: bool = False  # from a HaluEval QA row (whose row ranges have roles: see evals)


# --------------------------------------------------------------------------------------------
# Reading lines and JSON objects
# --------------------------------------------------------------------------------------------


def read_jsonl(
    path: Path | str, required: Sequence[str] = ()
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a JSON Lines file.

    Line numbers are 1-based and count blank lines, so they match what an editor shows.
    Raises EvalDataError for a missing or empty file, a line that is not a JSON object, or an
    object lacking one of the `required` fields.
    """
    path = Path(path)
    for line_number, text in _numbered_lines(path):
        record = _parse_object(text, path, line_number)
        missing = [field for field in required if field not in record]
        if missing:
            raise EvalDataError(f"{_where(path, line_number)}: missing field {missing[0]!r}")
        yield line_number, record


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for each non-blank line; raise if there is none."""
    found_any = False
    with _open_binary(path) as handle:
        for line_number, raw in enumerate(handle, start=1):
            text = _decode(raw, path, line_number)
            if text.strip():
                found_any = True
                yield line_number, text
    if not found_any:
        raise EvalDataError(f"{path}: file is empty")


def _open_binary(path: Path) -> IO[bytes]:
    # Binary, so a bad byte is reported with its line number instead of failing the whole read.
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise EvalDataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EvalDataError(f"{path}: is a directory, not a file") from None
    except OSError as error:
        raise EvalDataError(f"{path}: cannot read ({error.strerror})") from None


def _decode(raw: bytes, path: Path, line_number: int) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EvalDataError(
            f"{_where(path, line_number)}: not valid UTF-8 ({error.reason})"
        ) from None
    # Files saved by some Windows editors start with a byte-order mark that JSON rejects.
    return text.removeprefix("\ufeff") if line_number == 1 else text


def _parse_object(text: str, path: Path, line_number: int) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise EvalDataError(f"{_where(path, line_number)}: invalid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise EvalDataError(
            f"{_where(path, line_number)}: expected a JSON object, got {_json_type(value)}"
        )
    return value


def _where(path: Path, line_number: int) -> str:
    return f"{path} line {line_number}"


def _json_type(value: object) -> str:
    # Name JSON types as the file's author sees them, not as Python classes.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


# --------------------------------------------------------------------------------------------
# Typed field access
# --------------------------------------------------------------------------------------------


def _string_field(record: Mapping[str, Any], field: str, where: str) -> str:
    value = record[field]
    if not isinstance(value, str):
        raise EvalDataError(f"{where}: field {field!r} must be a string, got {_json_type(value)}")
    return value


def _optional_string_field(record: Mapping[str, Any], field: str, where: str) -> str | None:
    if record.get(field) is None:
        return None
    return _string_field(record, field, where)


def _id_field(record: Mapping[str, Any], field: str, where: str) -> str:
    # Some exports write numeric ids as JSON numbers; qrels always compare them as strings.
    value = record[field]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise EvalDataError(f"{where}: field {field!r} must be a non-empty string or an integer")


def _check_unique(seen: dict[str, int], key: str, label: str, where: str, line: int) -> None:
    # A repeated id would silently overwrite (or double-count) an item; refuse it instead.
    if key in seen:
        raise EvalDataError(f"{where}: duplicate {label} {key!r} (first on line {seen[key]})")
    seen[key] = line


# --------------------------------------------------------------------------------------------
# BEIR
# --------------------------------------------------------------------------------------------


def load_beir_queries(path: Path | str) -> dict[str, str]:
    """Read a BEIR queries file (JSON Lines with `_id` and `text`) into {query id: text}."""
    path = Path(path)
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line_number, record in read_jsonl(path, required=("_id", "text")):
        where = _where(path, line_number)
        query_id = _id_field(record, "_id", where)
        _check_unique(first_line, query_id, "_id", where, line_number)
        queries[query_id] = _string_field(record, "text", where)
    return queries


def load_beir_qrels(path: Path | str) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV into {query id: {corpus id: score}}.

    The expected header `query-id<TAB>corpus-id<TAB>score` is skipped when present and
    tolerated when absent.
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[str, int] = {}
    for line_number, text in _numbered_lines(path):
        fields = text.rstrip("\r\n").split("\t")
        if not qrels and _is_qrels_header(fields):
            continue
        query_id, corpus_id, score = _parse_qrels_row(fields, _where(path, line_number))
        pair = f"{query_id}\t{corpus_id}"
        _check_unique(first_line, pair, "pair", _where(path, line_number), line_number)
        qrels.setdefault(query_id, {})[corpus_id] = score
    if not qrels:
        raise EvalDataError(f"{path}: no qrels rows after the header")
    return qrels


def _is_qrels_header(fields: list[str]) -> bool:
    return [field.strip().lower() for field in fields] == _QRELS_HEADER


def _parse_qrels_row(fields: list[str], where: str) -> tuple[str, str, int]:
    if len(fields) != 3:
        raise EvalDataError(
            f"{where}: expected 3 tab-separated fields (query-id, corpus-id, score), "
            f"got {len(fields)}"
        )
    query_id, corpus_id, score_text = (field.strip() for field in fields)
    if not query_id or not corpus_id:
        raise EvalDataError(f"{where}: empty query-id or corpus-id")
    try:
        score = int(score_text)
    except ValueError:
        raise EvalDataError(
            f"{where}: score {score_text!r} is not an integer "
            "(a header line must read 'query-id<TAB>corpus-id<TAB>score')"
        ) from None
    return query_id, corpus_id, score


# --------------------------------------------------------------------------------------------
# SQuAD 2.0 style QA
# --------------------------------------------------------------------------------------------


def load_qa_items(path: Path | str) -> list[QAItem]:
    """Read SQuAD 2.0 style QA rows (JSON Lines) into QAItems, in file order.

    Each row needs `question`. `answers` may be a list of `{"text": ...}` objects, a list of
    strings, or a HuggingFace-style `{"text": [...]}` object; it may be left out only when
    `is_impossible` is true. `is_impossible` defaults to "no answers". `id` defaults to the
    line number; `doc_id` and `title` are optional.
    """
    path = Path(path)
    items: list[QAItem] = []
    first_line: dict[str, int] = {}
    for line_number, record in read_jsonl(path, required=("question",)):
        item = _qa_item(record, _where(path, line_number), line_number)
        _check_unique(first_line, item.id, "id", _where(path, line_number), line_number)
        items.append(item)
    return items


def _qa_item(record: Mapping[str, Any], where: str, line_number: int) -> QAItem:
    declared_impossible = record.get("is_impossible")
    if declared_impossible is not None and not isinstance(declared_impossible, bool):
        raise EvalDataError(f"{where}: field 'is_impossible' must be true or false")
    if "answers" not in record and declared_impossible is not True:
        raise EvalDataError(f"{where}: missing field 'answers'")
    answers = _answer_texts(record.get("answers", []), where)
    is_impossible = not answers if declared_impossible is None else declared_impossible
    # Contradictory rows would be scored by the wrong rule (abstain vs. match); refuse them.
    if is_impossible and answers:
        raise EvalDataError(f"{where}: 'is_impossible' is true but 'answers' is not empty")
    if not is_impossible and not answers:
        raise EvalDataError(f"{where}: 'is_impossible' is false but 'answers' is empty")
    return QAItem(
        id=_id_field(record, "id", where) if "id" in record else str(line_number),
        question=_string_field(record, "question", where),
        answers=answers,
        is_impossible=is_impossible,
        doc_id=_optional_string_field(record, "doc_id", where),
        title=_optional_string_field(record, "title", where),
    )


def _answer_texts(value: object, where: str) -> tuple[str, ...]:
    # HuggingFace's squad_v2 stores answers as {"text": [...], "answer_start": [...]}.
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        value = value["text"]
    if not isinstance(value, list):
        raise EvalDataError(f"{where}: field 'answers' must be a list, got {_json_type(value)}")
    return tuple(_answer_text(answer, index, where) for index, answer in enumerate(value))


def _answer_text(answer: object, index: int, where: str) -> str:
    if isinstance(answer, str):
        return answer
    if isinstance(answer, dict) and isinstance(answer.get("text"), str):
        return str(answer["text"])
    raise EvalDataError(
        f"{where}: answers[{index}] must be a string or an object with a string 'text'"
    )


# --------------------------------------------------------------------------------------------
# HaluEval QA
# --------------------------------------------------------------------------------------------

_HALU_FIELDS = ("knowledge", "question", "right_answer", "hallucinated_answer")


def load_halueval(path: Path | str) -> list[HaluItem]:
    """Read HaluEval QA rows (JSON Lines with knowledge, question, right_answer,
    hallucinated_answer) into HaluItems, in file order."""
    path = Path(path)
    items: list[HaluItem] = []
    for line_number, record in read_jsonl(path, required=_HALU_FIELDS):
        where = _where(path, line_number)
        values = {field: _string_field(record, field, where) for field in _HALU_FIELDS}
        items.append(HaluItem(**values))
    return items


# --------------------------------------------------------------------------------------------
# Faithfulness rows: HaluEval QA or the generic {question, context, answer, label}
# --------------------------------------------------------------------------------------------

_GENERIC_FIELDS = ("question", "context", "answer", "label")


def load_faithfulness(path: Path | str) -> list[FaithfulnessItem]:
    """Answers to judge, from HaluEval QA rows (each gives its right answer, faithful, then its
    hallucinated one) or from generic rows `{question, context, answer, label}` with label 1 for
    a faithful answer and 0 for an unfaithful one. The first row decides the format."""
    path = Path(path)
    items: list[FaithfulnessItem] = []
    generic: bool | None = None
    for row, (line_number, record) in enumerate(read_jsonl(path)):
        where = _where(path, line_number)
        if generic is None:
            generic = "context" in record and "answer" in record
        if generic:
            missing = [field for field in _GENERIC_FIELDS if field not in record]
            if missing:
                raise EvalDataError(f"{where}: missing field '{missing[0]}'")
            label = record["label"]
            if isinstance(label, bool) or label not in (0, 1):
                raise EvalDataError(f"{where}: field 'label' must be 0 or 1")
            question, context, answer = (
                _string_field(record, field, where) for field in _GENERIC_FIELDS[:3]
            )
            items.append(FaithfulnessItem(row, question, context, answer, faithful=label == 1))
            continue
        missing = [field for field in _HALU_FIELDS if field not in record]
        if missing:
            raise EvalDataError(f"{where}: missing field '{missing[0]}'")
        knowledge, question, right, hallucinated = (
            _string_field(record, field, where) for field in _HALU_FIELDS
        )
        items.append(FaithfulnessItem(row, question, knowledge, right, True, halueval=True))
        items.append(FaithfulnessItem(row, question, knowledge, hallucinated, False, halueval=True))
    return items


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def select_articles(items: Sequence[QAItem], titles: Sequence[str]) -> list[QAItem]:
    """The items whose `title` is one of `titles`, in file order: e.g. the SQuAD articles a
    model was validated on and never trained on. A title no item has is an error (a typo would
    otherwise shrink the set without a word); no titles selects every item."""
    if not titles:
        return list(items)
    wanted = set(titles)
    found = {item.title for item in items if item.title in wanted}
    unknown = [title for title in dict.fromkeys(titles) if title not in found]
    if unknown:
        raise EvalDataError(f"no question has the article title {unknown[0]!r}")
    return [item for item in items if item.title in wanted]


def balanced_sample(items: Sequence[QAItem], limit: int, seed: int) -> list[QAItem]:
    """Pick up to `limit` items, half answerable and half unanswerable, reproducibly.

    With an odd limit the answerable side gets the extra item. If one side has too few items
    the other side fills the gap, so the result has min(limit, len(items)) items. Selection uses
    random.Random(seed) only; the result keeps the input order. Each side is shuffled once and
    its prefix taken, so for a fixed seed a larger limit returns a superset of a smaller one.
    """
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    answerable = [index for index, item in enumerate(items) if not item.is_impossible]
    unanswerable = [index for index, item in enumerate(items) if item.is_impossible]
    answerable_count, unanswerable_count = _split_quota(limit, len(answerable), len(unanswerable))
    rng = random.Random(seed)
    rng.shuffle(answerable)
    rng.shuffle(unanswerable)
    chosen = answerable[:answerable_count] + unanswerable[:unanswerable_count]
    return [items[index] for index in sorted(chosen)]


def _split_quota(limit: int, answerable: int, unanswerable: int) -> tuple[int, int]:
    """How many answerable and unanswerable items to take for a total of `limit`."""
    want_unanswerable = limit // 2
    take_answerable = min(limit - want_unanswerable, answerable)
    take_unanswerable = min(want_unanswerable, unanswerable)
    shortfall = limit - take_answerable - take_unanswerable
    # Whichever side still has items left makes up for the side that ran out.
    extra_answerable = min(shortfall, answerable - take_answerable)
    take_answerable += extra_answerable
    take_unanswerable = min(take_unanswerable + shortfall - extra_answerable, unanswerable)
    return take_answerable, take_unanswerable
