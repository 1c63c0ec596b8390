"""Scoring functions for the evaluation harness.

Everything here is a pure function over plain Python values, so the numbers can be checked by
hand and compared with published results:

- retrieval: `ndcg_at_k`, `recall_at_k`, `mrr_at_k`, computed the way BEIR / pytrec_eval do;
- answers: `normalize_answer`, `exact_match`, `f1_score`, following the official SQuAD 2.0
  evaluation script (including its rule for unanswerable questions);
- abstain / hallucination decisions: `classification_scores`;
- citations: `citation_precision_recall` over per-sentence `SentenceJudgement`s;
- summaries: `mean`, `median`, `percentile`.

Empty-input conventions (each function's docstring repeats its own):

- `mean`, `median` and `percentile` return nan for an empty sample, because there is no such
  number; 0.0 would read as a real (and suspiciously good) latency or score.
- ratios whose denominator is zero (precision with no positive predictions, nDCG / recall with
  no relevant documents, ...) return 0.0, as sklearn and pytrec_eval do.
"""

import math
import re
import string
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "SentenceJudgement",
    "citation_precision_recall",
    "classification_scores",
    "exact_match",
    "f1_score",
    "mean",
    "median",
    "mrr_at_k",
    "ndcg_at_k",
    "normalize_answer",
    "percentile",
    "recall_at_k",
]


# --------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------


def ndcg_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the first `k` results.

    As in pytrec_eval's `ndcg_cut` (which BEIR reports): the gain of a document is its graded
    relevance, the result at 1-based rank r is discounted by log2(r + 1), and the ideal ranking
    is the judged relevances sorted in descending order. Relevance <= 0 counts as no gain.
    Returns 0.0 when no document is relevant.
    """
    _check_k(k)
    ideal_gains = sorted((grade for grade in relevance.values() if grade > 0), reverse=True)
    ideal = _discounted_gain(ideal_gains[:k])
    if ideal == 0.0:
        return 0.0
    gains = [max(relevance.get(doc_id, 0), 0) for doc_id in _first_k_unique(ranked_ids, k)]
    return _discounted_gain(gains) / ideal


def recall_at_k(
    ranked_ids: Sequence[str], relevant: Collection[str] | Mapping[str, int], k: int = 10
) -> float:
    """Share of the relevant documents that appear in the first `k` results.

    `relevant` is a set of ids, or a qrels mapping in which ids with relevance > 0 count.
    Returns 0.0 when nothing is relevant.
    """
    _check_k(k)
    relevant_ids = _relevant_ids(relevant)
    if not relevant_ids:
        return 0.0
    found = sum(1 for doc_id in _first_k_unique(ranked_ids, k) if doc_id in relevant_ids)
    return found / len(relevant_ids)


def mrr_at_k(
    ranked_ids: Sequence[str], relevant: Collection[str] | Mapping[str, int], k: int = 10
) -> float:
    """Reciprocal of the 1-based rank of the first relevant result within the first `k`.

    Returns 0.0 when no relevant document is ranked in the first `k` (or none exists).
    """
    _check_k(k)
    relevant_ids = _relevant_ids(relevant)
    for rank, doc_id in enumerate(_first_k_unique(ranked_ids, k), start=1):
        if doc_id in relevant_ids:
            return 1.0 / rank
    return 0.0


def _check_k(k: int) -> None:
    # A cut-off of 0 would make every score 0.0 and hide a configuration mistake.
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _discounted_gain(gains: Iterable[float]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def _first_k_unique(ranked_ids: Sequence[str], k: int) -> list[str]:
    # pytrec_eval takes a run as a dict, so a document can be ranked only once; a retriever
    # that returns the same id twice (e.g. two chunks of one document) must not earn twice.
    unique_ids = list(dict.fromkeys(ranked_ids))
    return unique_ids[:k]


def _relevant_ids(relevant: Collection[str] | Mapping[str, int]) -> set[str]:
    if isinstance(relevant, Mapping):
        return {doc_id for doc_id, grade in relevant.items() if grade > 0}
    return set(relevant)


# --------------------------------------------------------------------------------------------
# Answers (SQuAD 2.0)
# --------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace.

    The same steps, in the same order, as the official SQuAD 2.0 evaluation script, so our
    exact-match and F1 numbers are comparable with published ones.
    """
    lowered = text.lower()
    without_punctuation = "".join(char for char in lowered if char not in _PUNCTUATION)
    without_articles = _ARTICLES.sub(" ", without_punctuation)
    return " ".join(without_articles.split())


def exact_match(prediction: str, gold_answers: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0.

    An empty gold list means the question is unanswerable: the official rule scores 1.0 only
    when the prediction is empty (after normalisation), i.e. the system abstained.
    """
    normalized_prediction = normalize_answer(prediction)
    golds = _official_golds(gold_answers)
    return max(float(normalized_prediction == normalize_answer(gold)) for gold in golds)


def f1_score(prediction: str, gold_answers: Sequence[str]) -> float:
    """Token-overlap F1 between prediction and the best-matching gold answer.

    An empty gold list means the question is unanswerable: 1.0 if the prediction is empty
    (after normalisation), else 0.0 -- the official SQuAD 2.0 rule.
    """
    prediction_tokens = normalize_answer(prediction).split()
    golds = _official_golds(gold_answers)
    return max(_token_f1(prediction_tokens, normalize_answer(gold).split()) for gold in golds)


def _official_golds(gold_answers: Sequence[str]) -> list[str]:
    # The official script drops gold answers that normalise to nothing, and scores a question
    # with no gold answer left against the single gold "", which yields the abstain rule.
    golds = [gold for gold in gold_answers if normalize_answer(gold)]
    return golds or [""]


def _token_f1(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    if not prediction_tokens or not gold_tokens:
        # Official rule: if either side is empty, F1 is 1 when both are empty, else 0.
        return float(prediction_tokens == gold_tokens)
    common = Counter(prediction_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------------------------
# Binary decisions (abstain / hallucination detection)
# --------------------------------------------------------------------------------------------


def classification_scores(predictions: Sequence[bool], labels: Sequence[bool]) -> dict[str, float]:
    """Accuracy, precision, recall and F1 with True as the positive class.

    Any ratio whose denominator is zero is 0.0 (for empty input every score is 0.0).
    Raises ValueError if the two sequences differ in length, since pairing them would be wrong.
    """
    if len(predictions) != len(labels):
        raise ValueError(
            f"predictions and labels differ in length ({len(predictions)} != {len(labels)})"
        )
    pairs = list(zip(predictions, labels, strict=True))
    true_positives = sum(1 for predicted, label in pairs if predicted and label)
    false_positives = sum(1 for predicted, label in pairs if predicted and not label)
    false_negatives = sum(1 for predicted, label in pairs if not predicted and label)
    correct = sum(1 for predicted, label in pairs if bool(predicted) == bool(label))
    precision = _ratio(true_positives, true_positives + false_positives)
    recall = _ratio(true_positives, true_positives + false_negatives)
    return {
        "accuracy": _ratio(correct, len(pairs)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
    }


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


# --------------------------------------------------------------------------------------------
# Citations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentenceJudgement:
    """One sentence of an answer, as displayed and as judged.

    `cited` holds the passage numbers the answer displayed for this sentence (e.g. (1, 3) for
    "... [1][3]"); `supporting` holds the passage numbers that actually support the sentence,
    according to a judge.
    """

    cited: tuple[int, ...]
    supporting: tuple[int, ...]


def citation_precision_recall(sentences: Sequence[SentenceJudgement]) -> tuple[float, float]:
    """Citation precision and recall of one answer.

    Precision: of all citations displayed in the answer, the share that support the sentence
    they are attached to. A passage cited twice in the same sentence counts once, because the
    judge's verdict is per (sentence, passage) pair.
    Recall: the share of sentences carrying at least one supporting citation.

    Empty cases: an answer with no citations has precision 0.0 (nothing displayed earns no
    credit), and an answer with no sentences has precision 0.0 and recall 0.0. Callers that
    want to exclude abstentions from citation scores should filter them out before calling.
    """
    total_citations = 0
    supported_citations = 0
    supported_sentences = 0
    for sentence in sentences:
        cited = set(sentence.cited)
        good = cited & set(sentence.supporting)
        total_citations += len(cited)
        supported_citations += len(good)
        supported_sentences += 1 if good else 0
    precision = _ratio(supported_citations, total_citations)
    recall = _ratio(supported_sentences, len(sentences))
    return precision, recall


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; nan for an empty sample."""
    numbers = list(values)
    if not numbers:
        return math.nan
    return math.fsum(numbers) / len(numbers)


def median(values: Iterable[float]) -> float:
    """Middle value (mean of the two middle values for an even count); nan when empty."""
    return percentile(values, 50.0)


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) by linear interpolation; nan for an empty sample.

    Matches numpy.percentile's default ("linear") method: the value at fractional position
    (n - 1) * q / 100 of the sorted sample, interpolated between its two neighbours.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be between 0 and 100, got {q}")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100.0
    lower_index = math.floor(position)
    upper_index = min(lower_index + 1, len(ordered) - 1)
    fraction = position - lower_index
    lower, upper = float(ordered[lower_index]), float(ordered[upper_index])
    if fraction == 0.0:
        # Exact position: return the sample value itself, so e.g. inf - inf never yields nan.
        return lower
    return lower + (upper - lower) * fraction
