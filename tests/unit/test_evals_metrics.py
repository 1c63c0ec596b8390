"""Tests for assistant.evals.metrics: hand-computed values for every scoring function."""

import math

import numpy as np
import pytest

from assistant.evals.metrics import (
    SentenceJudgement,
    citation_precision_recall,
    classification_scores,
    exact_match,
    f1_score,
    mean,
    median,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
)

# --------------------------------------------------------------------------------------------
# nDCG / recall / MRR
# --------------------------------------------------------------------------------------------


def test_ndcg_hand_computed() -> None:
    # Ranking [a, b, c], relevance {b: 1, c: 2}:
    # DCG  = 0/log2(2) + 1/log2(3) + 2/log2(4) = 0.6309 + 1.0 = 1.6309
    # IDCG = 2/log2(2) + 1/log2(3)             = 2.0 + 0.6309 = 2.6309
    # nDCG = 1.6309 / 2.6309 = 0.6199
    expected = (1 / math.log2(3) + 2 / 2) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "b", "c"], {"b": 1, "c": 2}) == pytest.approx(expected)
    assert ndcg_at_k(["a", "b", "c"], {"b": 1, "c": 2}) == pytest.approx(0.61991, abs=1e-5)


def test_ndcg_perfect_ranking_is_one() -> None:
    assert ndcg_at_k(["c", "b", "a"], {"b": 1, "c": 2}) == pytest.approx(1.0)


def test_ndcg_cutoff_ignores_results_past_k() -> None:
    # k=1: DCG = 0 (a is not relevant), IDCG = 2/log2(2) = 2 -> 0.0
    assert ndcg_at_k(["a", "c"], {"c": 2}, k=1) == 0.0
    # k=2: DCG = 2/log2(3), IDCG = 2/log2(2) = 2 -> 1/log2(3) = 0.6309
    assert ndcg_at_k(["a", "c"], {"c": 2}, k=2) == pytest.approx(1 / math.log2(3))


def test_ndcg_ideal_uses_all_judged_documents_even_unretrieved() -> None:
    # Retrieved only b (rel 1) at rank 1: DCG = 1. Ideal puts c (rel 2) first, then b:
    # IDCG = 2 + 1/log2(3) = 2.6309 -> nDCG = 0.3801
    assert ndcg_at_k(["b"], {"b": 1, "c": 2}) == pytest.approx(1 / (2 + 1 / math.log2(3)))


def test_ndcg_no_relevant_documents_is_zero() -> None:
    assert ndcg_at_k(["a", "b"], {}) == 0.0
    assert ndcg_at_k(["a", "b"], {"a": 0}) == 0.0


def test_ndcg_duplicate_ids_count_once() -> None:
    # [b, b] with {b: 1}: the second b earns nothing, so nDCG stays 1.0 rather than exceeding it.
    assert ndcg_at_k(["b", "b"], {"b": 1}) == pytest.approx(1.0)


def test_ndcg_rejects_nonpositive_k() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        ndcg_at_k(["a"], {"a": 1}, k=0)


def test_recall_at_k_hand_computed() -> None:
    # Relevant {b, c, d}; top-3 of [a, b, c, d] holds b and c -> 2/3.
    assert recall_at_k(["a", "b", "c", "d"], {"b", "c", "d"}, k=3) == pytest.approx(2 / 3)
    assert recall_at_k(["a", "b", "c", "d"], {"b", "c", "d"}, k=4) == pytest.approx(1.0)


def test_recall_at_k_accepts_qrels_mapping_ignoring_zero_grades() -> None:
    # Only b (grade 1) counts as relevant; d (grade 0) does not -> 1/1.
    assert recall_at_k(["b"], {"b": 1, "d": 0}, k=10) == pytest.approx(1.0)


def test_recall_at_k_no_relevant_is_zero() -> None:
    assert recall_at_k(["a"], set(), k=10) == 0.0


def test_mrr_at_k_hand_computed() -> None:
    # First relevant result c is at rank 3 -> 1/3.
    assert mrr_at_k(["a", "b", "c"], {"c", "d"}, k=10) == pytest.approx(1 / 3)
    # With k=2 the relevant result is cut off -> 0.
    assert mrr_at_k(["a", "b", "c"], {"c"}, k=2) == 0.0
    assert mrr_at_k(["x", "c"], {"c": 2, "x": 0}, k=10) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# SQuAD normalisation, EM, F1
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  an   apple, a pear!  ", "apple pear"),
        ("U.S.A.", "usa"),
        ("Theater", "theater"),  # "the" inside a word is not an article
        ("A", ""),
        ("$12", "12"),
        ("rock-and-roll", "rockandroll"),  # the official script deletes punctuation, no space
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_exact_match_takes_best_gold() -> None:
    assert exact_match("the October 1973.", ["1973", "October 1973"]) == 1.0
    assert exact_match("October", ["October 1973"]) == 0.0


def test_f1_hand_computed() -> None:
    # prediction tokens [october, 1973, crisis], gold tokens [october, 1973]:
    # overlap 2, precision 2/3, recall 2/2 -> F1 = 2*(2/3)*1/(2/3+1) = 0.8
    assert f1_score("October 1973 crisis", ["October 1973"]) == pytest.approx(0.8)


def test_f1_max_over_golds_and_counts_repeated_tokens() -> None:
    # vs "zzz": no overlap -> 0. vs "x x y": prediction [x, x], gold [x, x, y]:
    # overlap 2 (x counted twice), p = 2/2, r = 2/3 -> F1 = 2*1*(2/3)/(1+2/3) = 0.8; max = 0.8
    assert f1_score("x x", ["zzz", "x x y"]) == pytest.approx(0.8)
    assert f1_score("q", ["zzz"]) == 0.0


def test_unanswerable_rule_empty_prediction_scores_one() -> None:
    assert exact_match("", []) == 1.0
    assert f1_score("", []) == 1.0
    # A prediction that normalises to nothing ("The.") also counts as abstaining.
    assert exact_match("The.", []) == 1.0


def test_unanswerable_rule_any_answer_scores_zero() -> None:
    assert exact_match("Paris", []) == 0.0
    assert f1_score("Paris", []) == 0.0


def test_empty_prediction_on_answerable_question_scores_zero() -> None:
    assert exact_match("", ["Paris"]) == 0.0
    assert f1_score("", ["Paris"]) == 0.0


def test_gold_answers_that_normalise_to_nothing_are_dropped() -> None:
    # Official script: ["the"] normalises to [""] and is dropped, leaving the unanswerable rule.
    assert exact_match("", ["the"]) == 1.0
    assert f1_score("Paris", ["the"]) == 0.0


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def test_mean_and_median() -> None:
    assert mean([1.0, 2.0, 6.0]) == pytest.approx(3.0)
    assert median([5.0, 1.0, 3.0]) == 3.0
    # Even count: mean of the two middle values (2 and 3).
    assert median([4.0, 1.0, 3.0, 2.0]) == pytest.approx(2.5)


def test_percentile_hand_computed() -> None:
    # Sorted [10, 20, 30, 40]; q=90 -> position 3 * 0.9 = 2.7 -> 30 + 0.7 * (40 - 30) = 37.
    assert percentile([40, 10, 30, 20], 90) == pytest.approx(37.0)
    assert percentile([40, 10, 30, 20], 0) == 10.0
    assert percentile([40, 10, 30, 20], 100) == 40.0


@pytest.mark.parametrize("q", [0.0, 5.0, 25.0, 50.0, 95.0, 99.0, 100.0])
def test_percentile_matches_numpy_default(q: float) -> None:
    values = [3.5, 0.2, 9.0, 4.4, 4.4, 7.1, 12.0]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_summaries_of_empty_input_are_nan() -> None:
    assert math.isnan(mean([]))
    assert math.isnan(median([]))
    assert math.isnan(percentile([], 95))


def test_percentile_rejects_q_out_of_range() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def test_classification_scores_hand_computed() -> None:
    predictions = [True, True, False, False, True]
    labels = [True, False, True, False, True]
    # TP = 2 (items 0, 4), FP = 1 (item 1), FN = 1 (item 2), TN = 1 (item 3)
    # accuracy = 3/5, precision = 2/3, recall = 2/3, F1 = 2/3
    scores = classification_scores(predictions, labels)
    assert scores["accuracy"] == pytest.approx(0.6)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)


def test_classification_zero_division_gives_zero() -> None:
    # Never predicts True: precision has denominator 0; recall = 0/1.
    scores = classification_scores([False, False], [True, False])
    assert scores == {"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert classification_scores([], []) == {
        "accuracy": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
    }


def test_classification_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        classification_scores([True], [True, False])


# --------------------------------------------------------------------------------------------
# Citations
# --------------------------------------------------------------------------------------------


def test_citation_precision_recall_constructed_answer() -> None:
    answer = [
        # "Paris is the capital [1][2]." -> 1 supports, 2 does not.
        SentenceJudgement(cited=(1, 2), supporting=(1,)),
        # "It has 2 million people [3]." -> 3 supports.
        SentenceJudgement(cited=(3,), supporting=(3, 4)),
        # "It is old." -> no citation, though 4 would support it.
        SentenceJudgement(cited=(), supporting=(4,)),
        # "It is big [2]." -> 2 does not support it.
        SentenceJudgement(cited=(2,), supporting=()),
    ]
    # Citations displayed: 1, 2, 3, 2 = 4; supporting among them: 1 and 3 = 2 -> precision 0.5.
    # Sentences with at least one supporting citation: first and second = 2 of 4 -> recall 0.5.
    assert citation_precision_recall(answer) == pytest.approx((0.5, 0.5))


def test_citation_repeated_in_one_sentence_counts_once() -> None:
    # [1][1][2] with only 1 supporting: distinct citations {1, 2}, one supports -> 0.5.
    precision, recall = citation_precision_recall([SentenceJudgement((1, 1, 2), (1,))])
    assert precision == pytest.approx(0.5)
    assert recall == 1.0


def test_citation_fully_supported_answer() -> None:
    answer = [SentenceJudgement((1,), (1,)), SentenceJudgement((2, 3), (2, 3))]
    assert citation_precision_recall(answer) == (1.0, 1.0)


def test_citation_empty_cases() -> None:
    # No sentences: both 0.0.
    assert citation_precision_recall([]) == (0.0, 0.0)
    # Sentences but no citations: nothing displayed earns no precision; no sentence is covered.
    assert citation_precision_recall([SentenceJudgement((), (1,))]) == (0.0, 0.0)


def test_sentence_judgement_is_frozen() -> None:
    judgement = SentenceJudgement(cited=(1,), supporting=(1,))
    with pytest.raises(AttributeError):
        judgement.cited = (2,)  # type: ignore[misc]
