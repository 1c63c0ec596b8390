"""End-to-end tests of the trained verifier (assistant/grounding/verifier.py) with its shipped
weights: on real passages of the sample corpus, a sentence of the passage scores above the same
sentence with a number, a name or a negation swapped (the FactCC-style pairs it was trained on),
and a passage that answers a question scores above one that does not."""

import pytest

from assistant.grounding.verifier import WEIGHTS, Verifier

BPE = (
    "BPE began as a data compression method. Philip Gage described it in 1994 in an article "
    "titled A New Algorithm for Data Compression: repeatedly find the most frequent pair of "
    "adjacent bytes and replace it with a byte value that does not occur in the data."
)
DENSE = (
    "The standard architecture is the bi-encoder: questions and passages are encoded "
    "independently, usually by the same transformer, and compared with a cheap similarity "
    "function. Because passages are encoded without seeing the question, their vectors can be "
    "computed once at indexing time and stored."
)
CROSS = (
    "A cross-encoder, by contrast, reads the question and a passage together and outputs a "
    "relevance score. It is more accurate, because attention can compare the two texts word by "
    "word, but it must run once for every candidate passage at query time."
)

# (passage, supported sentence, the same sentence with one fact swapped)
CASES = [
    (
        BPE,
        "Philip Gage described it in 1994.",
        "Philip Gage described it in 2009.",
    ),
    (
        BPE,
        "Philip Gage described BPE as a data compression method.",
        "Alan Turing described BPE as a data compression method.",
    ),
    (
        DENSE,
        "Passages are encoded without seeing the question.",
        "Passages are not encoded without seeing the question.",
    ),
    (
        CROSS,
        "A cross-encoder reads the question and a passage together.",
        "A bi-encoder reads the question and a passage together.",
    ),
]


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    if not WEIGHTS.is_file():
        pytest.fail(f"the shipped verifier weights are missing: {WEIGHTS}")
    return Verifier()


@pytest.mark.parametrize(("passage", "supported", "swapped"), CASES)
def test_supported_claim_scores_above_its_swap(
    verifier: Verifier, passage: str, supported: str, swapped: str
) -> None:
    good, bad = verifier.support([(passage, supported), (passage, swapped)])
    assert good > bad
    assert good >= verifier.thresholds.support


def test_answering_passage_scores_above_an_unrelated_one(verifier: Verifier) -> None:
    question = "Who described BPE as a data compression method?"
    assert verifier.answerable(question, [BPE]) > verifier.answerable(question, [DENSE])
    assert verifier.answerable(question, [BPE, DENSE]) >= verifier.thresholds.answerable


def test_batches_match_single_pairs(verifier: Verifier) -> None:
    pairs = [(passage, supported) for passage, supported, _ in CASES]
    together = verifier.support(pairs)
    alone = [verifier.support([pair])[0] for pair in pairs]
    # Padding a batch changes the order of sums; in bfloat16 autocast (chosen where measured
    # faster, on CPUs with AVX512-BF16) that moves a score by up to a few thousandths.
    tolerance = 5e-3 if verifier.bfloat16 else 1e-3
    assert together == pytest.approx(alone, abs=tolerance)
