"""The QA suite: SQuAD 2.0-style questions asked through the same pipeline as `assistant ask`.

The documents are ingested into a home, every question is answered by `Answerer.ask` (retrieval,
prompt, greedy generation, citation check, abstention), and the answers are scored:

- exact match and F1 on answerable questions (SQuAD normalization; an abstention scores 0);
- abstention on unanswerable questions (`hallucination_rate` is 1 - that) and false abstention on
  answerable ones;
- citation precision / recall and faithfulness over the displayed sentences, judged by a judge
  independent of the checker that chose the citations: a passage supports a sentence when it
  holds at least `JUDGE_COVERAGE` of the sentence's content words (numbers and names included);
- `retrieval_hit@k`: a retrieved passage contains a gold answer;
- latency per question (median, p95).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answer.memory import Turn
from assistant.answer.pipeline import Answer, Answerer
from assistant.evals.datasets import (
    QAItem,
    balanced_sample,
    load_qa_items,
    read_jsonl,
    select_articles,
)
from assistant.evals.metrics import (
    SentenceJudgement,
    citation_precision_recall,
    exact_match,
    f1_score,
    mean,
    median,
    normalize_answer,
    percentile,
)
from assistant.evals.report import EvalProgress, EvalReport
from assistant.index.home import Home
from assistant.index.passage import Passage
from assistant.ingest.pipeline import IngestProgress, IngestSummary, ingest
from assistant.text.sentences import content_words

if TYPE_CHECKING:
    from assistant.llm.torch_engine import LanguageModel

JUDGE_COVERAGE = 0.75
REPORTED_SETTINGS = (
    "top_k",
    "retrieval_mode",
    "max_new_tokens",
    "temperature",
    "repetition_penalty",
    "support_threshold",
    "min_retrieval_score",
    "unsupported",
    "chunk_tokens",
    "embedding_model",
    "rewrite_follow_ups",
    "give_up_after",
    "min_supported_share",
    "require_question_terms",
    "require_answer_type",
    "engine",
    "weights",
    "step_products",
    "prompt_products",
    "native_attention",
    "native_step",
    "step_threads",
    "model_code",
    "embedding_backend",
    "verifier",
)


def engine_used(language_model: object) -> str:
    """What ran the model: the engine's class and, for ours, the kernels measured for this CPU."""
    plan = getattr(language_model, "plan", None)
    choices = getattr(plan, "choices", {}) or {}
    details = ", ".join(f"{name}={choice.chosen}" for name, choice in choices.items())
    return type(language_model).__name__ + (f" ({details})" if details else "")


def judge_supports(sentence: str, passage: str) -> bool:
    """The eval's own support judge: most of the sentence's content words are in the passage."""
    words = content_words(sentence)
    if not words:
        return False
    available = set(content_words(passage))
    return sum(word in available for word in words) / len(words) >= JUDGE_COVERAGE


def answer_prose(answer: Answer) -> str:
    """The displayed answer's supported sentences without citation markers (for EM/F1)."""
    if answer.abstained:
        return ""
    shown = [s.text for s in answer.grounded.sentences if s.display and s.supported]
    return " ".join(shown) if shown else ""


def run_qa_eval(
    home: Home,
    language_model: LanguageModel,
    docs: Path,
    questions_path: Path,
    limit: int | None = None,
    seed: int = 0,
    articles: Sequence[str] = (),
) -> Iterator[EvalProgress | EvalReport]:
    """Ingest `docs`, answer the questions, and report the metrics described above; with
    `articles`, only the questions of those article titles (before sampling)."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    items = select_articles(load_qa_items(questions_path), articles)
    if limit is not None:
        items = balanced_sample(items, limit, seed)
    for event in ingest(home, [docs]):
        if isinstance(event, IngestProgress):
            yield EvalProgress(event.files_done, event.files_total, "ingesting documents")
        elif isinstance(event, IngestSummary) and not (event.added or event.unchanged):
            raise_empty(docs)
    answerer = Answerer(home, language_model)
    follow_ups = _follow_ups(questions_path)
    records: list[dict[str, Any]] = []
    answered: dict[str, Turn] = {}
    for number, item in enumerate(items, start=1):
        # A follow-up is asked after its first question, as in a chat (see memory.rewrite_query).
        earlier = follow_ups.get(item.id)
        turns = [answered[earlier]] if earlier in answered else []
        record = _answer_one(answerer, item, turns)
        record["follow_up_of"] = earlier
        answered[item.id] = Turn(item.question, str(record["answer"]))
        records.append(record)
        yield EvalProgress(number, len(items), "answering")
    yield EvalReport(
        suite="qa",
        metrics=qa_metrics(records),
        config={
            "limit": limit,
            "seed": seed,
            "articles": list(articles),
            **{name: home.config.as_dict()[name] for name in REPORTED_SETTINGS},
            "engine_used": engine_used(language_model),
        },
        model=language_model.name,
        dataset=str(questions_path),
        n=len(items),
        started=started_at,
        seconds=time.perf_counter() - started,
        records=records,
    )


def raise_empty(docs: Path) -> None:
    from assistant.errors import EvalDataError

    raise EvalDataError(f"{docs}: no readable documents to answer from")


def _follow_ups(path: Path) -> dict[str, str]:
    """Question id -> the id of the question it follows up (sample-qa.jsonl's `follow_up_of`)."""
    return {
        str(record["id"]): str(record["follow_up_of"])
        for _, record in read_jsonl(path)
        if record.get("follow_up_of") and record.get("id")
    }


def _answer_one(answerer: Answerer, item: QAItem, turns: Sequence[Turn]) -> dict[str, Any]:
    started = time.perf_counter()
    final: Answer | None = None
    for event in answerer.ask(item.question, turns=turns):
        if isinstance(event, Answer):
            final = event
    seconds = time.perf_counter() - started
    if final is None:  # pragma: no cover - ask always ends with an Answer
        raise RuntimeError("the answerer produced no answer")
    prose = answer_prose(final)
    judgements = _judge(final)
    return {
        "id": item.id,
        "question": item.question,
        "gold": list(item.answers),
        "is_impossible": item.is_impossible,
        "query": final.query,
        "answer": final.text,
        "prose": prose,
        "abstained": final.abstained,
        "abstain_reason": final.grounded.reason,
        "exact_match": exact_match(prose, item.answers) if item.answers else None,
        "f1": f1_score(prose, item.answers) if item.answers else None,
        "retrieval_hit": _hit(final.passages, item.answers) if item.answers else None,
        "sentences": [
            {"cited": list(j.cited), "supporting": list(j.supporting)} for j in judgements
        ],
        "displayed_sentences": len(judgements),
        "supported_sentences": sum(1 for j in judgements if j.supporting),
        "seconds": seconds,
        "timings": {name: round(value, 3) for name, value in final.timings.items()},
        "raw_answer": final.grounded.raw_answer,
        "sources": [p.source for p in final.passages],
    }


def _judge(answer: Answer) -> list[SentenceJudgement]:
    """Judge every displayed claim against every passage with the eval's own judge."""
    if answer.abstained:
        return []
    judged = []
    for sentence in answer.grounded.sentences:
        if not sentence.display or not sentence.is_claim:
            continue
        supporting = tuple(
            number
            for number, passage in enumerate(answer.passages, start=1)
            if judge_supports(sentence.text, passage.text)
        )
        judged.append(SentenceJudgement(tuple(sentence.citations), supporting))
    return judged


def _hit(passages: Sequence[Passage], answers: Sequence[str]) -> bool:
    golds = [normalize_answer(answer) for answer in answers if normalize_answer(answer)]
    return any(gold in normalize_answer(passage.text) for passage in passages for gold in golds)


def qa_metrics(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    answerable = [r for r in records if not r["is_impossible"]]
    unanswerable = [r for r in records if r["is_impossible"]]
    answered = [r for r in records if not r["abstained"]]
    precision_recall = [
        citation_precision_recall(
            [SentenceJudgement(tuple(s["cited"]), tuple(s["supporting"])) for s in r["sentences"]]
        )
        for r in answered
        if r["sentences"]
    ]
    abstain_unanswerable = mean(float(r["abstained"]) for r in unanswerable)
    follow_ups = [r for r in answerable if r.get("follow_up_of")]
    seconds = [float(r["seconds"]) for r in records]
    return {
        "exact_match": mean(float(r["exact_match"]) for r in answerable),
        "f1": mean(float(r["f1"]) for r in answerable),
        "abstain_rate_unanswerable": abstain_unanswerable,
        "hallucination_rate": 1.0 - abstain_unanswerable if unanswerable else float("nan"),
        "false_abstain_rate_answerable": mean(float(r["abstained"]) for r in answerable),
        "citation_precision": mean(p for p, _ in precision_recall),
        "citation_recall": mean(r for _, r in precision_recall),
        "faithfulness": _ratio(
            sum(r["supported_sentences"] for r in answered),
            sum(r["displayed_sentences"] for r in answered),
        ),
        "retrieval_hit@k": mean(float(r["retrieval_hit"]) for r in answerable),
        "retrieval_hit@k_follow_ups": mean(float(r["retrieval_hit"]) for r in follow_ups),
        "latency_median_s": median(seconds),
        "latency_p95_s": percentile(seconds, 95),
    }


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")
