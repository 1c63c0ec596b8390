"""Tests for the verifier's decision logic in assistant.grounding.checker and its input format
in assistant.grounding.verifier, with a tiny fake model: a claim is supported by a window that
holds all its words, and a question answered by a window holding all its words but "what".
The real shipped weights are tested in tests/e2e/test_grounding_verifier.py."""

from collections.abc import Sequence

import pytest

from assistant.errors import ConfigError
from assistant.grounding.checker import (
    ABSTAIN_MESSAGE,
    QUOTE_ANSWERABLE_THRESHOLD,
    GroundingReason,
    SupportChecker,
)
from assistant.grounding.verifier import (
    CLAIM_PREFIX,
    QUESTION_PREFIX,
    WINDOW_WORDS,
    Thresholds,
    claim_text,
    evidence_windows,
    question_text,
)
from tests.fakes import fake_embed, passage


def _words(text: str) -> set[str]:
    return {word.strip(".,?!:").lower() for word in text.split()} - {"", "claim", "question"}


class FakeVerifier:
    """Scores 0.9 when every word of the claim is in the window, else 0.1; counts the pairs."""

    def __init__(self) -> None:
        self.thresholds = Thresholds(support=0.5, answerable=0.5)
        self.pairs_scored = 0

    def support(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.pairs_scored += len(pairs)
        return [0.9 if _words(claim) <= _words(window) else 0.1 for window, claim in pairs]

    def answerable(self, question: str, windows: Sequence[str]) -> float:
        asked = _words(question) - {"what", "who", "when"}
        return max((0.9 if asked <= _words(window) else 0.1 for window in windows), default=0.0)


PARIS = "Paris is the capital of France. The city has about two million inhabitants."
TOKENS = "A tokenizer splits text into subword units. Byte pair encoding merges frequent pairs."


@pytest.fixture
def verifier() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture
def checker(verifier: FakeVerifier) -> SupportChecker:
    return SupportChecker(fake_embed, verifier=verifier)


def test_windows_cover_every_sentence_and_stay_short() -> None:
    sentences = [
        f"Sentence number {index} says something about topic {index}." for index in range(12)
    ]
    windows = evidence_windows(" ".join(sentences))
    assert all(len(window.split()) <= WINDOW_WORDS for window in windows)
    assert all(any(sentence in window for window in windows) for sentence in sentences)
    assert evidence_windows(PARIS) == [PARIS]  # short text: one window
    assert evidence_windows("   ") == []


def test_inputs_say_which_check_is_asked() -> None:
    assert claim_text("Delhi", "Where is the head office?") == (
        f"{CLAIM_PREFIX}Where is the head office? Delhi"
    )
    assert question_text("Where  is it?") == f"{QUESTION_PREFIX}Where is it?"


def test_supported_sentence_is_cited_to_its_passage(checker: SupportChecker) -> None:
    grounded = checker.check(
        "Paris is the capital of France. It was founded by aliens.",
        [passage(1, TOKENS), passage(2, PARIS)],
    )
    first, second = grounded.sentences
    assert first.supported and first.citations == (2,)
    assert not second.supported and second.citations == ()
    assert not grounded.abstained


def test_no_supported_sentence_abstains(checker: SupportChecker) -> None:
    grounded = checker.check("Berlin is the capital of France.", [passage(1, PARIS)])
    assert grounded.abstained
    assert grounded.reason is GroundingReason.NO_SUPPORTED_SENTENCE
    assert grounded.answer == ABSTAIN_MESSAGE


def test_unanswered_question_abstains_even_with_supported_quotes(checker: SupportChecker) -> None:
    passages = [passage(1, PARIS)]
    answered = checker.check("Paris is the capital of France.", passages, question="capital?")
    assert not answered.abstained and answered.evidence_score == pytest.approx(0.9)
    grounded = checker.check(
        "Paris is the capital of France.", passages, question="What is the capital of Spain?"
    )
    assert grounded.abstained and grounded.reason is GroundingReason.UNANSWERED


def test_judge_uses_the_model_threshold(checker: SupportChecker) -> None:
    assert checker.judge(PARIS, "Paris", "capital of France") == (True, 0.9)
    assert checker.judge(PARIS, "a village", "capital of France") == (False, 0.1)
    # A name of the answer that the passage never mentions fails it whatever the model says.
    assert checker.judge(PARIS, "Lyon", "capital of France") == (False, 0.0)


def test_streaming_checks_do_not_rescore_pairs(
    checker: SupportChecker, verifier: FakeVerifier
) -> None:
    passages = [passage(1, PARIS), passage(2, TOKENS)]
    checker.check("Paris is the capital of France.", passages)
    scored = verifier.pairs_scored
    checker.check("Paris is the capital of France. A tokenizer splits text.", passages)
    assert verifier.pairs_scored == scored + 2  # only the new sentence's closest windows


def test_rules_checker_has_no_verifier() -> None:
    rules = SupportChecker(fake_embed)
    assert rules.verifier is None
    with pytest.raises(ConfigError):
        rules.answerability("What?", [passage(1, PARIS)])


def test_quotes_answer_when_the_verifier_finds_the_answer_in_them(
    checker: SupportChecker,
) -> None:
    question = "What is the capital of France?"
    assert checker.quotes_answer(question, ["Paris is the capital of France."])
    # On topic, from the same passage, but not the answer: not shown in its place.
    assert not checker.quotes_answer(question, ["The city has about two million inhabitants."])
    assert not checker.quotes_answer(question, [])


def test_several_quotes_answer_together_or_one_alone(checker: SupportChecker) -> None:
    together = ["Paris is a city.", "It is the capital of France."]
    # Neither sentence holds every word of the question; read together they do.
    assert checker.quote_answerability("Paris capital of France?", together) == pytest.approx(0.9)
    alone = ["Paris is the capital of France.", "Byte pair encoding merges frequent pairs."]
    assert checker.quote_answerability("capital of France?", alone) == pytest.approx(0.9)
    unrelated = ["A tokenizer splits text.", "Byte pair encoding merges frequent pairs."]
    assert checker.quote_answerability("capital of France?", unrelated) == pytest.approx(0.1)


def test_quote_gate_is_the_tuned_threshold() -> None:
    class Fixed(FakeVerifier):
        def __init__(self, score: float) -> None:
            super().__init__()
            self.score = score

        def answerable(self, question: str, windows: Sequence[str]) -> float:
            return self.score

    quotes = ["Paris is the capital of France."]
    at = SupportChecker(fake_embed, verifier=Fixed(QUOTE_ANSWERABLE_THRESHOLD))
    below = SupportChecker(fake_embed, verifier=Fixed(QUOTE_ANSWERABLE_THRESHOLD - 0.01))
    assert at.quotes_answer("What is the capital?", quotes)
    assert not below.quotes_answer("What is the capital?", quotes)


def test_rules_checker_lets_every_quote_through() -> None:
    rules = SupportChecker(fake_embed)
    assert rules.quotes_answer("What is the capital of Spain?", ["Paris is a city."])
    with pytest.raises(ConfigError):
        rules.quote_answerability("What?", ["Paris is a city."])
