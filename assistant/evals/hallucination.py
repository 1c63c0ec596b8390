"""The hallucination suite: can our support checker tell a grounded answer from an invented one?

Each HaluEval-QA row gives a knowledge text, a question, a right answer and a hallucinated one.
The project's own `SupportChecker.judge` (the same scorer that cites and abstains in `ask`) judges
both answers against the knowledge; an answer judged unsupported counts as "flagged as
hallucinated". Reported: accuracy, precision, recall and F1 for detecting the hallucinated answer.

Rows `TUNING_ROWS` were used to tune the checker's thresholds (`evals/tune_support.py`), so they
are never evaluated here; `--limit N` takes a seeded sample of the other rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.evals.datasets import load_halueval
from assistant.evals.metrics import classification_scores
from assistant.evals.report import EvalProgress, EvalReport
from assistant.grounding.checker import SupportChecker

TUNING_ROWS = range(4000, 5000)  # 0-based row indexes reserved for tuning


def evaluation_rows(total: int, limit: int | None, seed: int) -> list[int]:
    """Row indexes to evaluate: all rows outside the tuning slice, or a seeded sample of them."""
    rows = [index for index in range(total) if index not in TUNING_ROWS]
    if limit is not None and limit < len(rows):
        rows = sorted(random.Random(seed).sample(rows, limit))
    return rows


def run_hallucination_eval(
    checker: SupportChecker,
    data: Path,
    limit: int | None = None,
    seed: int = 0,
    model_name: str = "",
) -> Iterator[EvalProgress | EvalReport]:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    items = load_halueval(data)
    rows = evaluation_rows(len(items), limit, seed)
    predictions: list[bool] = []
    labels: list[bool] = []
    records: list[dict[str, Any]] = []
    for done, index in enumerate(rows, start=1):
        item = items[index]
        for answer, hallucinated in ((item.right_answer, False), (item.hallucinated_answer, True)):
            supported, score = checker.judge(item.knowledge, answer, item.question)
            predictions.append(not supported)
            labels.append(hallucinated)
            records.append(
                {
                    "row": index,
                    "question": item.question,
                    "answer": answer,
                    "hallucinated": hallucinated,
                    "flagged": not supported,
                    "score": round(score, 4),
                }
            )
        yield EvalProgress(done, len(rows), "judging")
    metrics = classification_scores(predictions, labels)
    yield EvalReport(
        suite="hallucination",
        metrics=metrics,
        config={
            "limit": limit,
            "seed": seed,
            "threshold": checker.threshold,
            "excluded_tuning_rows": f"{TUNING_ROWS.start}-{TUNING_ROWS.stop - 1}",
        },
        model=model_name,
        dataset=str(data),
        n=len(rows),
        started=started_at,
        seconds=time.perf_counter() - started,
        records=records,
    )
