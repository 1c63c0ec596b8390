"""Tests for assistant.grounding.checker: support scores, re-citing, abstaining (sentences and
content words are tested in test_text_sentences.py).

The fast tests use a deterministic fake embedder (hashed bag of words), so cosine similarity is
word overlap and every number can be reasoned about; one end-to-end test uses the bundled
all-MiniLM-L6-v2 to show that a paraphrase passes and an unrelated fact does not.
"""

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pytest

from assistant.errors import ConfigError
from assistant.grounding.checker import ABSTAIN_MESSAGE, Claim, RememberingEmbed, SupportChecker
from assistant.index.passage import Passage
from assistant.text.sentences import question_terms, split_sentences
from tests.fakes import fake_embed, passage

KV_CACHE = (
    "The KV cache stores the keys and values of past tokens. "
    "It grows linearly with the context length and the number of layers."
)
TOKENIZER = "A tokenizer splits text into subword units. Byte pair encoding merges frequent pairs."
PARIS = "Paris is the capital of France. The city has about 2.1 million inhabitants."
PASSAGES = [passage(1, KV_CACHE), passage(2, TOKENIZER), passage(3, PARIS)]
GREEK = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota kappa lambda mu nu xi."


@pytest.fixture
def checker() -> SupportChecker:
    # Explicit weights, so retuning the defaults does not change what these tests mean.
    return SupportChecker(
        fake_embed,
        threshold=0.6,
        lexical_weight=0.5,
        semantic_floor=0.0,
        key_term_penalty=0.5,
        min_evidence_score=0.2,
        citation_margin=0.05,
    )


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def test_support_is_monotone_in_overlap(checker: SupportChecker) -> None:
    copied = checker.score("The KV cache stores the keys and values of past tokens.", KV_CACHE)
    partial = checker.score("The KV cache stores compressed summaries of past images.", KV_CACHE)
    invented = checker.score("The novel Frankenstein was written by Mary Shelley.", KV_CACHE)
    assert 1.0 >= copied > partial > invented >= 0.0
    assert copied >= checker.threshold > partial


def test_default_checker_separates_copy_from_invention() -> None:
    checker = SupportChecker(fake_embed)
    assert (
        checker.score("The KV cache stores keys and values of past tokens.", KV_CACHE)
        >= checker.threshold
    )
    assert checker.score("Frankenstein was written by Mary Shelley.", KV_CACHE) < checker.threshold


def test_missing_number_costs_support(checker: SupportChecker) -> None:
    right = checker.score("Paris has about 2.1 million inhabitants.", PARIS)
    wrong = checker.score("Paris has about 9.4 million inhabitants.", PARIS)
    assert right >= checker.threshold > wrong


def test_markers_do_not_count_as_words(checker: SupportChecker) -> None:
    plain = checker.score("Paris is the capital of France.", PARIS)
    assert checker.score("Paris is the capital of France [3][9].", PARIS) == pytest.approx(plain)


def test_judge_short_answers_with_their_question(checker: SupportChecker) -> None:
    question = "What is the capital of France?"
    assert checker.judge(PARIS, "Paris", question)[0]
    supported, score = checker.judge(PARIS, "Lyon is the capital of France.", question)
    assert not supported
    assert score < checker.threshold
    assert Claim.from_answer("Paris", question).text == "What is the capital of France? Paris"


def test_invalid_settings_raise() -> None:
    with pytest.raises(ConfigError):
        SupportChecker(fake_embed, threshold=1.5)
    with pytest.raises(ConfigError):
        SupportChecker(fake_embed, semantic_floor=1.0)
    with pytest.raises(ConfigError):
        SupportChecker(fake_embed).check("x", PASSAGES, unsupported="hide")


# --------------------------------------------------------------------------------------------
# Checking answers
# --------------------------------------------------------------------------------------------


def test_system_cites_the_passage_that_holds_the_fact(checker: SupportChecker) -> None:
    answer = (
        "The KV cache stores the keys and values of past tokens [2]. "
        "Paris is the capital of France [1]."
    )
    result = checker.check(answer, PASSAGES)
    assert not result.abstained
    first, second = result.sentences
    assert (first.citations, first.model_citations) == ((1,), (2,))
    assert (second.citations, second.model_citations) == ((3,), (1,))
    assert result.answer == (
        "The KV cache stores the keys and values of past tokens [1]. "
        "Paris is the capital of France [3]."
    )
    assert result.raw_answer == answer


def test_invalid_markers_are_removed(checker: SupportChecker) -> None:
    result = checker.check("Paris is the capital of France [7][3].", PASSAGES)
    (sentence,) = result.sentences
    assert sentence.model_citations == (3,)
    assert sentence.text == "Paris is the capital of France."
    assert "[7]" not in result.answer


def test_fact_in_two_passages_cites_both(checker: SupportChecker) -> None:
    passages = [passage(1, PARIS), passage(2, TOKENIZER), passage(3, PARIS)]
    result = checker.check("Paris is the capital of France.", passages)
    assert result.sentences[0].citations == (1, 3)
    assert result.answer == "Paris is the capital of France [1][3]."


ANSWER = (
    "Sure! Here is what I found:\n"
    "- The KV cache stores the keys and values of past tokens.\n"
    "- Frankenstein was written by Mary Shelley [1].\n"
    "- Paris is the capital of France."
)


def test_flag_mode_keeps_unsupported_sentences_uncited(checker: SupportChecker) -> None:
    result = checker.check(ANSWER, PASSAGES, unsupported="flag")
    assert [(s.is_claim, s.supported) for s in result.sentences] == [
        (False, False),
        (False, False),
        (True, True),
        (True, False),
        (True, True),
    ]
    assert result.answer == (
        "Sure! Here is what I found:\n"
        "- The KV cache stores the keys and values of past tokens [1].\n"
        "- Frankenstein was written by Mary Shelley.\n"
        "- Paris is the capital of France [3]."
    )
    flagged = result.sentences[3]
    assert (flagged.citations, flagged.model_citations) == ((), (1,))
    assert flagged.display in result.answer


def test_drop_mode_removes_unsupported_sentences(checker: SupportChecker) -> None:
    result = checker.check(ANSWER, PASSAGES, unsupported="drop")
    assert result.answer == (
        "Sure! Here is what I found:\n"
        "- The KV cache stores the keys and values of past tokens [1].\n"
        "- Paris is the capital of France [3]."
    )
    assert result.sentences[3].display == ""
    assert len(result.claims) == 3


def test_drop_mode_inside_a_paragraph(checker: SupportChecker) -> None:
    answer = (
        "Paris is the capital of France. Frankenstein was written by Mary Shelley. Hope this helps!"
    )
    result = checker.check(answer, PASSAGES, unsupported="drop")
    assert result.answer == "Paris is the capital of France [3]. Hope this helps!"


@pytest.mark.parametrize("mode", ["flag", "drop"])
def test_abstains_when_no_claim_is_supported(checker: SupportChecker, mode: str) -> None:
    result = checker.check(
        "Sure! Frankenstein was written by Mary Shelley [1].", PASSAGES, unsupported=mode
    )
    assert result.abstained
    assert result.reason == "no_supported_sentence"
    assert result.answer == ABSTAIN_MESSAGE
    assert result.sentences[1].text == "Frankenstein was written by Mary Shelley."


@pytest.mark.parametrize("answer", ["", "Sure.", "I could not find this in the documents."])
def test_abstains_when_there_is_no_claim(checker: SupportChecker, answer: str) -> None:
    result = checker.check(answer, PASSAGES)
    assert (result.abstained, result.reason) == (True, "no_supported_sentence")


def test_abstains_without_passages(checker: SupportChecker) -> None:
    result = checker.check("Paris is the capital of France.", [])
    assert (result.abstained, result.reason, result.answer) == (
        True,
        "no_passages",
        ABSTAIN_MESSAGE,
    )


@pytest.mark.parametrize(
    "question",
    [
        "How large does the KV cache grow?",
        "Who painted the Mona Lisa?",
        "What does byte pair encoding merge?",
        "How many inhabitants does the capital have?",
        "beta gamma delta epsilon",  # closest to a pair of sentences (0.82; either alone 0.58)
    ],
)
@pytest.mark.parametrize("minimum", [0.1, 0.2, 0.35, 0.5, 0.7, 0.9])
def test_weak_evidence_is_decided_by_the_best_unit(question: str, minimum: float) -> None:
    """The staged check gives the decision of the full score, and embeds the pairs of
    sentences only when the single sentences and whole passages were not close enough."""
    embedded: list[str] = []

    def counting(texts: Sequence[str]) -> npt.NDArray[np.float64]:
        embedded.extend(texts)
        return fake_embed(texts)

    checker = SupportChecker(counting, min_evidence_score=minimum)
    texts = (KV_CACHE, TOKENIZER, PARIS, GREEK)
    passages = [passage(number, text) for number, text in enumerate(texts, start=1)]
    weak = checker.evidence_is_weak(question, passages)
    staged = set(embedded)
    singles = {unit for text in texts for unit in [text, *split_sentences(text)]}
    # (A two-sentence passage's only pair is the passage itself.)
    pairs = {f"{a} {b}" for text in texts for a, b in pairwise(split_sentences(text))} - singles
    question_vector = fake_embed([question])[0]
    singles_score = max(float(fake_embed([unit])[0] @ question_vector) for unit in singles)
    assert weak == (checker.evidence_score(question, passages) < minimum)
    assert bool(pairs & staged) == (singles_score < minimum)
    if question.startswith("beta") and minimum == 0.7:
        assert not weak and singles_score < minimum  # the pairs decided it


def test_weak_evidence(checker: SupportChecker) -> None:
    assert not checker.evidence_is_weak("How large does the KV cache grow?", PASSAGES)
    assert checker.evidence_is_weak("Who painted the Mona Lisa?", PASSAGES)
    assert checker.evidence_is_weak("How large does the KV cache grow?", [])
    result = checker.check(
        "Paris is the capital of France.", PASSAGES, question="Who painted the Mona Lisa?"
    )
    assert (result.abstained, result.reason) == (True, "weak_retrieval")
    assert result.evidence_score is not None
    assert result.evidence_score < checker.min_evidence_score


def test_question_with_good_evidence_does_not_abstain(checker: SupportChecker) -> None:
    result = checker.check(
        "Paris is the capital of France.", PASSAGES, question="What is the capital of France?"
    )
    assert not result.abstained
    assert result.evidence_score is not None
    assert result.evidence_score >= checker.min_evidence_score


# --------------------------------------------------------------------------------------------
# End to end, with the bundled embedder
# --------------------------------------------------------------------------------------------


def test_remembering_embed_embeds_each_text_once() -> None:
    seen: list[list[str]] = []

    def counting(texts: Sequence[str]) -> npt.NDArray[np.float64]:
        seen.append(list(texts))
        return fake_embed(texts)

    embed = RememberingEmbed(counting, size=3)
    first = embed(["kv cache", "tokens", "kv cache"])
    assert seen == [["kv cache", "tokens"]]  # duplicates within a call are embedded once
    assert np.allclose(first, fake_embed(["kv cache", "tokens", "kv cache"]))
    again = embed(["tokens", "layers"])
    assert seen[-1] == ["layers"]  # only the new text reaches the model
    assert np.allclose(again, fake_embed(["tokens", "layers"]))
    embed(["heads"])  # holds 3: "kv cache" (least recently used) is forgotten
    embed(["kv cache"])
    assert seen[-2:] == [["heads"], ["kv cache"]]
    assert embed([]).shape[0] == 0


def test_checking_the_same_passages_again_embeds_only_new_sentences() -> None:
    calls: list[int] = []

    def counting(texts: Sequence[str]) -> npt.NDArray[np.float64]:
        calls.append(len(texts))
        return fake_embed(texts)

    checker = SupportChecker(counting)
    passages = [passage(1, KV_CACHE), passage(2, TOKENIZER)]
    first = checker.check("The KV cache stores keys and values.", passages)
    second = checker.check(
        "The KV cache stores keys and values. The tokenizer splits the text into units.",
        passages,
    )
    assert first.sentences[0].supported and second.sentences[1].supported
    assert calls[1] == 1  # the second check only embedded its new sentence


@pytest.mark.parametrize(
    ("question", "terms"),
    [
        (
            "What did the Chinchilla paper find in 2022?",
            {"chinchilla": "Chinchilla", "2022": "2022"},
        ),
        # A capital at the start says nothing; an acronym or a number there does.
        ("Pollution of water encourages the growth of what?", {}),
        ("Name a luxury model of the 1970s.", {"1970": "1970s"}),
        ("BM25 scores documents how?", {"bm": "BM25", "25": "BM25"}),
        ("GGUF replaced which format?", {"gguf": "GGUF"}),
        ("How is the KV cache sized?", {"kv": "KV"}),
    ],
)
def test_question_terms(question: str, terms: dict[str, str]) -> None:
    assert question_terms(question) == terms


def test_missing_terms_are_the_question_names_no_passage_mentions() -> None:
    kv = [passage(1, KV_CACHE), passage(2, PARIS)]
    assert SupportChecker.missing_terms("What does the KV cache store?", kv) == []
    assert SupportChecker.missing_terms("How big is the KV cache of Mistral in 2024?", kv) == [
        "Mistral",
        "2024",
    ]
    # A word is named as written, once.
    assert SupportChecker.missing_terms("What does NF4 in QLoRA's paper mean?", kv) == [
        "NF4",
        "QLoRA",
    ]
    # Headings count as mentions; accents do not matter.
    headed = [Passage(1, "He ruled from 1373.", "w.md", 1, 2, None, "Bolesław II", 0.5, 1)]
    assert SupportChecker.missing_terms("When did Boleslaw II rule?", headed) == []
