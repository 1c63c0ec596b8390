"""Tune the trained verifier's gate on quotes, on SQuAD articles no reported eval uses.

With `verifier = "model"`, when the model's answer is mostly unsupported the pipeline quotes the
passage sentences closest to the question (`assistant.grounding.quotes.best_quotes`) instead.
Those are on-topic sentences, not necessarily an answer: on the 5 validation articles, 83 of the
125 unanswerable questions still answered were answered with quotes. The gate
(`SupportChecker.quotes_answer`) lets quotes through only when the verifier's answerability of
the quoted sentences reaches `QUOTE_ANSWERABLE_THRESHOLD`; this script chooses that threshold.

Data: the questions of the 15 SQuAD 2.0 dev articles that `evals/train_verifier.py` trains on
(`squad_split`; never the 5 validation articles the QA report uses), a balanced seed-0 sample,
asked against the same 20 documents the QA eval ingests. No language model runs: which quotes
are picked depends only on the question and the passages, so every question goes through the
pipeline's steps up to the quotes (retrieval, the abstentions before generating, the verifier's
answerability of the passages) as if the model's own answer had been unsupported; the questions
that would abstain before are left out. Among the rest, a threshold blocks the quotes of an
unanswerable question (right) or of an answerable one (a false abstention); it is chosen for the
best balanced accuracy of the two (of thresholds within `TIE_MARGIN` of the best, the lowest:
fewer false abstentions), and the verifier's own answerable threshold is kept when it is within
`KEEP_MARGIN` of that best.

    python evals/tune_quotes.py [--limit 600] [--home /tmp/tune-quotes] \
        [--out evals/results/tune_quotes.json]

Prints the table and the choice, and writes them as JSON; the chosen value is copied by hand
into `assistant/grounding/checker.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "evals"))

from train_verifier import squad_split  # noqa: E402

from assistant.answer.pipeline import Answerer  # noqa: E402
from assistant.config import Config  # noqa: E402
from assistant.evals.datasets import balanced_sample, load_qa_items, select_articles  # noqa: E402
from assistant.evals.metrics import normalize_answer  # noqa: E402
from assistant.grounding.quotes import best_quotes  # noqa: E402
from assistant.index.home import Home  # noqa: E402
from assistant.ingest.pipeline import ingest  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "squad2-dev"
REPORTED_ARTICLES = {
    "1973_oil_crisis",
    "Jacksonville,_Florida",
    "Scottish_Parliament",
    "Southern_California",
    "Warsaw",
}
THRESHOLDS = tuple(round(0.02 * step, 2) for step in range(50))
KEEP_MARGIN = 0.02  # balanced accuracy within which the verifier's own threshold is kept
TIE_MARGIN = 0.005  # balanced accuracies this close are a tie: the lower threshold wins


class _TokenCounter:
    """Stands in for the language model where the answerer only counts tokens (about four
    characters a token, SmolLM2's context): the 5 passages of 200 tokens always fit."""

    name = "none"
    context_length = 8192
    last_stats = None

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def count_message_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        return sum(self.count_tokens(message["content"]) + 4 for message in messages)


def score_questions(home: Home, limit: int, seed: int) -> tuple[list[dict[str, Any]], float]:
    """Every sampled question of the training articles taken up to the quotes: where it stops
    before them, or the quotes' answerability (joined with each alone, joined only); and the
    verifier's own answerable threshold."""
    train_titles, validation_titles = squad_split()
    if set(train_titles) & REPORTED_ARTICLES or set(validation_titles) != REPORTED_ARTICLES:
        raise SystemExit("the training script's split no longer matches the reported articles")
    items = select_articles(load_qa_items(DATA / "questions.jsonl"), train_titles)
    items = balanced_sample(items, limit, seed)
    answerer = Answerer(home, _TokenCounter())  # type: ignore[arg-type]
    checker = answerer.checker
    verifier = checker.verifier
    if verifier is None:
        raise SystemExit("run with ASSISTANT_VERIFIER=model")
    rows = []
    for number, item in enumerate(items, start=1):
        row: dict[str, Any] = {"id": item.id, "is_impossible": item.is_impossible}
        search = answerer._retrieve(item.question, (), None)
        early = answerer._abstention_before_generating(item.question, search)
        passages = search.passages
        if early is not None:
            row["stop"] = str(early.reason)
        elif checker.answerability(item.question, passages) < verifier.thresholds.answerable:
            row["stop"] = "unanswered"
        else:
            quotes = best_quotes(item.question, passages, checker.embed)
            if not quotes or quotes[0].score < home.config.min_quote_score:
                row["stop"] = "no_quote"
            else:
                texts = [quote.text for quote in quotes]
                row["quotes"] = texts
                row["score"] = checker.quote_answerability(item.question, texts)
                row["score_joined"] = verifier.answerable(item.question, [" ".join(texts)])
                golds = [normalize_answer(answer) for answer in item.answers]
                quoted = normalize_answer(" ".join(texts))
                row["gold_quoted"] = any(gold and gold in quoted for gold in golds)
        rows.append(row)
        if number % 50 == 0:
            print(f"{number}/{len(items)} questions", file=sys.stderr)
    return rows, verifier.thresholds.answerable


def sweep(rows: Sequence[dict[str, Any]], key: str) -> list[dict[str, float]]:
    """For each threshold: the share of quoted unanswerable questions blocked, of quoted
    answerable ones blocked (all, and those whose quotes hold a gold answer), and the balanced
    accuracy (blocked unanswerable, kept answerable)."""
    quoted = [row for row in rows if "quotes" in row]
    unanswerable = [row[key] for row in quoted if row["is_impossible"]]
    answerable = [row[key] for row in quoted if not row["is_impossible"]]
    golden = [row[key] for row in quoted if not row["is_impossible"] and row["gold_quoted"]]
    table = []
    for threshold in THRESHOLDS:
        blocked = _share(unanswerable, threshold)
        lost = _share(answerable, threshold)
        table.append(
            {
                "threshold": threshold,
                "unanswerable_blocked": round(blocked, 4),
                "answerable_blocked": round(lost, 4),
                "gold_quotes_blocked": round(_share(golden, threshold), 4),
                "balanced_accuracy": round((blocked + 1.0 - lost) / 2, 4),
            }
        )
    return table


def _share(scores: Sequence[float], threshold: float) -> float:
    return sum(score < threshold for score in scores) / len(scores) if scores else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, default=Path("/tmp/tune-quotes"))
    parser.add_argument("--out", type=Path, default=ROOT / "evals/results/tune_quotes.json")
    arguments = parser.parse_args()
    started = time.perf_counter()
    home = Home(Config.load(home=arguments.home))
    try:
        for _ in ingest(home, [DATA / "docs"]):
            pass
        rows, answerable_threshold = score_questions(home, arguments.limit, arguments.seed)
    finally:
        home.close()
    tables = {key: sweep(rows, key) for key in ("score", "score_joined")}
    top = max(entry["balanced_accuracy"] for entry in tables["score"])
    best = next(
        entry for entry in tables["score"] if entry["balanced_accuracy"] >= top - TIE_MARGIN
    )
    at_own = min(tables["score"], key=lambda entry: abs(entry["threshold"] - answerable_threshold))
    keep = at_own["balanced_accuracy"] >= best["balanced_accuracy"] - KEEP_MARGIN
    chosen = at_own if keep else best
    stops: dict[str, int] = {}
    for row in rows:
        stop = row.get("stop", "quoted")
        side = "unanswerable" if row["is_impossible"] else "answerable"
        stops[f"{side} {stop}"] = stops.get(f"{side} {stop}", 0) + 1
    print(json.dumps(stops, indent=1, sort_keys=True))
    print("threshold  unanswerable blocked  answerable blocked  gold quotes blocked  balanced")
    for entry in tables["score"]:
        print(
            f"{entry['threshold']:9.2f}  {entry['unanswerable_blocked']:20.3f}  "
            f"{entry['answerable_blocked']:18.3f}  {entry['gold_quotes_blocked']:19.3f}  "
            f"{entry['balanced_accuracy']:8.3f}"
        )
    print(f"best {best}\nverifier's answerable threshold {at_own}\nchosen {chosen}")
    report = {
        "data": "SQuAD 2.0 dev, the 15 training articles of evals/train_verifier.py",
        "limit": arguments.limit,
        "seed": arguments.seed,
        "questions": len(rows),
        "stops": stops,
        "answerable_threshold": answerable_threshold,
        "best": best,
        "chosen": chosen,
        "kept_answerable_threshold": keep,
        "sweep": tables,
        "seconds": round(time.perf_counter() - started, 1),
    }
    arguments.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
