"""The hallucination suite: can our support checker tell a faithful answer from an invented one?

Each item is a context, a question, an answer and a label (faithful or not): HaluEval-QA rows
(each gives its right answer and its hallucinated one) or generic rows
`{question, context, answer, label}` with label 1 for faithful, so any human-labelled
faithfulness set is scored the same way. The project's own `SupportChecker.judge` (the scorer
that cites and abstains in `ask`, rules or trained verifier as configured) judges each answer
against its context; an answer judged unsupported is "flagged". Reported for flagging unfaithful
answers: accuracy, balanced accuracy, precision, recall and F1.

HaluEval rows 1000-3999 trained the verifier and rows 4000-4999 tuned both checkers
(`evals/train_verifier.py`, `evals/tune_support.py`), so only rows `HALUEVAL_REPORTED_ROWS`
(0-999) are evaluated from a HaluEval file; a generic file is evaluated whole. `--limit N` takes
a seeded sample of the rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.evals.datasets import FaithfulnessItem, load_faithfulness
from assistant.evals.metrics import classification_scores
from assistant.evals.report import EvalProgress, EvalReport
from assistant.grounding.checker import SupportChecker

HALUEVAL_REPORTED_ROWS = range(0, 1000)  # never trained or tuned on


def evaluation_rows(items: Sequence[FaithfulnessItem], limit: int | None, seed: int) -> list[int]:
    """Rows to evaluate: every row of a generic file, the reported rows of a HaluEval file, or a
    seeded sample of them."""
    rows = sorted(
        {item.row for item in items if not item.halueval or item.row in HALUEVAL_REPORTED_ROWS}
    )
    if limit is not None and limit < len(rows):
        rows = sorted(random.Random(seed).sample(rows, limit))
    return rows


def flagging_scores(flagged: Sequence[bool], unfaithful: Sequence[bool]) -> dict[str, float]:
    """Accuracy, balanced accuracy, precision, recall and F1 of flagging unfaithful answers."""
    scores = classification_scores(flagged, unfaithful)
    caught = [flag for flag, bad in zip(flagged, unfaithful, strict=True) if bad]
    passed = [not flag for flag, bad in zip(flagged, unfaithful, strict=True) if not bad]
    rates = [sum(group) / len(group) for group in (caught, passed) if group]
    balanced = sum(rates) / len(rates) if rates else 0.0
    return {"accuracy": scores["accuracy"], "balanced_accuracy": balanced, **scores}


def run_hallucination_eval(
    checker: SupportChecker,
    data: Path,
    limit: int | None = None,
    seed: int = 0,
    model_name: str = "",
) -> Iterator[EvalProgress | EvalReport]:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    items = load_faithfulness(data)
    rows = evaluation_rows(items, limit, seed)
    by_row: dict[int, list[FaithfulnessItem]] = {}
    for item in items:
        by_row.setdefault(item.row, []).append(item)
    flagged: list[bool] = []
    unfaithful: list[bool] = []
    records: list[dict[str, Any]] = []
    for done, row in enumerate(rows, start=1):
        for item in by_row[row]:
            supported, score = checker.judge(item.context, item.answer, item.question)
            flagged.append(not supported)
            unfaithful.append(not item.faithful)
            records.append(
                {
                    "row": row,
                    "question": item.question,
                    "answer": item.answer,
                    "hallucinated": not item.faithful,
                    "flagged": not supported,
                    "score": round(score, 4),
                }
            )
        yield EvalProgress(done, len(rows), "judging")
    verifier = checker.verifier
    yield EvalReport(
        suite="hallucination",
        metrics=flagging_scores(flagged, unfaithful),
        config={
            "limit": limit,
            "seed": seed,
            "verifier": "rules" if verifier is None else "model",
            "threshold": checker.threshold if verifier is None else verifier.thresholds.support,
            "reported_halueval_rows": (
                f"{HALUEVAL_REPORTED_ROWS.start}-{HALUEVAL_REPORTED_ROWS.stop - 1}"
            ),
        },
        model=model_name,
        dataset=str(data),
        n=len(rows),
        started=started_at,
        seconds=time.perf_counter() - started,
        records=records,
    )
