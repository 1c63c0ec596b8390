"""Tests for assistant.answer.memory: when turns fold, how summaries are validated, follow-up
rewriting."""

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.answer.memory import (
    SUMMARY_MAX_WORDS,
    Turn,
    conversation_text,
    extractive_summary,
    fold_into_summary,
    is_follow_up,
    rewrite_query,
    summary_problem,
    turn_tokens,
    turns_to_fold,
)
from assistant.errors import ModelError

SAMPLE_QA = Path(__file__).resolve().parents[2] / "evals" / "sets" / "sample-qa.jsonl"
WORD = re.compile(r"[^\W_](?:[\w.+'’-]*[^\W_])?")
STOPWORDS_TEXT = (
    "a an the of in on at to for by with is was were did does do what which who how when it its "
    "their they that this these those"
)
STOPWORDS = set(STOPWORDS_TEXT.split())

EIFFEL = [
    Turn(
        "When was the Eiffel Tower built?",
        "The Eiffel Tower was built between 1887 and 1889 for the World's Fair [1]. "
        "It was designed by the company of Gustave Eiffel [2].",
    ),
    Turn(
        "How tall is it?",
        "It is 330 metres tall including its antennas [1]. Its iron lattice weighs 7,300 tonnes.",
    ),
]


def count_tokens(text: str) -> int:
    return len(text.split())


def words_of(text: str) -> set[str]:
    return {word.lower() for word in WORD.findall(text)}


def key_words(text: str) -> set[str]:
    """Content words, lowercased, plural s dropped (so "bytes" counts as "byte")."""
    found = set()
    for word in WORD.findall(text.lower()):
        word = re.sub(r"'s$", "", word)
        if word not in STOPWORDS:
            found.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return found


# --------------------------------------------------------------------------------------------
# Turns and folding
# --------------------------------------------------------------------------------------------


def test_answers_carried_in_history_lose_citation_markers() -> None:
    turn = Turn("q", "Built in 1889 [1], by Eiffel [2, 3] and others [4-5].")
    assert turn.answer_without_citations == "Built in 1889, by Eiffel and others."
    assert turn_tokens(turn, count_tokens) == 1 + 7
    # Only markers go (as `text.citations` reads them): code keeps its indexing and indentation.
    code = Turn("q", "Read it with `values[0]` [1]:\n\n    first  =  values.pop()")
    assert (
        code.answer_without_citations == "Read it with `values[0]`:\n\n    first  =  values.pop()"
    )


def test_turns_fold_oldest_first_exactly_when_history_overflows() -> None:
    turns = [Turn(f"q{i} " * 4, f"a{i} " * 6) for i in range(5)]  # 10 tokens each
    assert turns_to_fold(turns, count_tokens, 50) == ()
    assert turns_to_fold(turns, count_tokens, 49) == tuple(turns[:1])
    assert turns_to_fold(turns, count_tokens, 20) == tuple(turns[:3])
    assert turns_to_fold(turns, count_tokens, 19) == tuple(turns[:4])


def test_latest_turn_is_never_folded_by_the_share() -> None:
    turns = [Turn("old", "answer"), Turn("new " * 50, "long " * 50)]
    assert turns_to_fold(turns, count_tokens, 5) == (turns[0],)
    assert turns_to_fold(turns[1:], count_tokens, 0) == ()
    assert turns_to_fold([], count_tokens, 0) == ()


# --------------------------------------------------------------------------------------------
# Summaries: validation and the extractive fallback
# --------------------------------------------------------------------------------------------


def test_a_faithful_model_summary_is_used() -> None:
    faithful = "The user asked when the Eiffel Tower was built (1887 to 1889) and how tall it is."

    def summarize(text: str) -> str:
        assert "When was the Eiffel Tower built?" in text and "[1]" not in text
        return faithful

    assert fold_into_summary("", EIFFEL, summarize) == faithful


def test_a_paraphrase_with_words_the_conversation_never_used_is_rejected() -> None:
    # Strict on purpose: "height" was never said ("tall" was), so the summary is not trusted.
    paraphrase = "The user asked when the Eiffel Tower was built and about its height."
    assert summary_problem(paraphrase, conversation_text("", EIFFEL)) == "unsupported words: height"


def test_a_hallucinating_summarizer_gets_the_extractive_fallback() -> None:
    def summarize(_text: str) -> str:
        return "The tower was built by Napoleon in 1802 from granite blocks quarried in Normandy."

    source = conversation_text("", EIFFEL)
    problem = summary_problem(summarize(source), source)
    assert problem is not None and problem.startswith("unsupported words")
    assert "napoleon" in problem
    summary = fold_into_summary("", EIFFEL, summarize)
    assert summary == extractive_summary("", EIFFEL, max_words=SUMMARY_MAX_WORDS)
    assert summary == (
        "User: When was the Eiffel Tower built? Assistant: The Eiffel Tower was built between "
        "1887 and 1889 for the World's Fair.\n"
        "User: How tall is it? Assistant: It is 330 metres tall including its antennas."
    )


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("Eiffel Tower.", "too short"),
        ("Eiffel Tower built 1889. " * 60, "too long"),
        ("The Eiffel Tower was built. The Eiffel Tower was built.", "repeated"),
        ("tower tower tower tower tower tower tower tower tower", "repeated"),
    ],
)
def test_unusable_summaries_are_rejected_with_a_reason(candidate: str, reason: str) -> None:
    source = conversation_text("", EIFFEL)
    assert summary_problem(candidate, source) == reason
    assert fold_into_summary("", EIFFEL, lambda _text: candidate) == extractive_summary(
        "", EIFFEL, max_words=SUMMARY_MAX_WORDS
    )


def test_unsupported_words_are_tolerated_only_below_the_tolerance() -> None:
    source = " ".join(f"word{i}" for i in range(40))
    supported = [f"word{i}" for i in range(18)]
    two_of_twenty = " ".join([*supported, "invented", "madeup"])
    one_of_twenty = " ".join([*supported, "word18", "invented"])
    assert summary_problem(one_of_twenty, source) is None  # 5 % absent
    assert summary_problem(two_of_twenty, source) is None  # 10 %: at the tolerance
    assert summary_problem(two_of_twenty + " fabricated", source) is not None  # 14 %
    assert summary_problem(two_of_twenty, source, tolerance=0.0) is not None


def test_summary_vocabulary_and_inflections_are_not_hallucinations() -> None:
    source = conversation_text("", EIFFEL)
    candidate = (
        "The user asked about the towers; the assistant explained it was designed by Eiffel."
    )
    assert summary_problem(candidate, source) is None


def test_summarizer_errors_and_missing_summarizer_fall_back() -> None:
    def broken(_text: str) -> str:
        raise ModelError("the model is not loaded")

    expected = extractive_summary("", EIFFEL, max_words=SUMMARY_MAX_WORDS)
    assert fold_into_summary("", EIFFEL, broken) == expected
    assert fold_into_summary("", EIFFEL, None) == expected
    assert fold_into_summary("Earlier summary.", [], broken) == "Earlier summary."


def test_previous_summary_is_part_of_what_is_summarized() -> None:
    seen: list[str] = []

    def summarize(text: str) -> str:
        seen.append(text)
        return "The user asked about the Champ de Mars and the Eiffel Tower."

    summary = fold_into_summary("The user asked about the Champ de Mars.", EIFFEL[:1], summarize)
    assert seen[0].startswith("Summary so far: The user asked about the Champ de Mars.")
    assert summary == "The user asked about the Champ de Mars and the Eiffel Tower."
    fallback = fold_into_summary("Champ de Mars park.", EIFFEL[:1], None)
    assert fallback.splitlines()[0] == "Champ de Mars park."


def test_extractive_summary_stays_within_bound_and_keeps_the_newest() -> None:
    turns = [
        Turn(f"Question number {i} about towers?", f"Answer {i} is long. " * 3) for i in range(40)
    ]
    summary = extractive_summary("", turns, max_words=60)
    assert len(summary.split()) <= 60
    assert (
        summary.splitlines()[-1]
        == "User: Question number 39 about towers? Assistant: Answer 39 is long."
    )
    huge = Turn("Why? " + "word " * 500, "x")
    assert len(extractive_summary("", [huge], max_words=30).split()) == 30


def replying(text: str) -> Callable[[str], str]:
    """A fake summarizer that always answers `text`."""
    return lambda _conversation: text


def test_folded_summaries_never_carry_words_the_conversation_lacked() -> None:
    rng = random.Random(7)
    vocabulary = [f"term{i}" for i in range(60)]
    invented = [f"ghost{i}" for i in range(20)]
    for _ in range(300):
        turns = [
            Turn(
                " ".join(rng.choices(vocabulary, k=rng.randint(1, 12))) + "?",
                ". ".join(
                    " ".join(rng.choices(vocabulary, k=rng.randint(2, 10)))
                    for _ in range(rng.randint(1, 4))
                )
                + ".",
            )
            for _ in range(rng.randint(1, 5))
        ]
        previous = " ".join(rng.choices(vocabulary, k=rng.randint(0, 20)))
        source = conversation_text(previous, turns)
        source_words = words_of(source)
        pool = sorted(source_words) + invented * rng.choice([0, 0, 1])
        output = " ".join(rng.choices(pool, k=rng.randint(0, 200)))
        summary = fold_into_summary(previous, turns, replying(output))
        content = [w for w in WORD.findall(summary.lower()) if w not in ("user", "assistant")]
        absent = [w for w in content if w not in source_words]
        assert len(absent) <= 0.1 * len(content)
        assert len(summary.split()) <= SUMMARY_MAX_WORDS
        if summary != output.strip():  # the fallback is purely extractive
            assert words_of(summary) <= source_words | {"user", "assistant"}


# --------------------------------------------------------------------------------------------
# Follow-up detection and query rewriting
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "follow_up",
    [
        "How tall is it?",
        "What about its height?",
        "And the visitors?",
        "Why?",
        "Tell me more.",
        "Who designed the tower?",
        "When was that structure painted?",
    ],
)
def test_eiffel_follow_ups_gain_the_topic_and_keep_the_question_first(follow_up: str) -> None:
    assert is_follow_up(follow_up)
    rewritten = rewrite_query(follow_up, EIFFEL[:1])
    assert rewritten.startswith(follow_up + " ")
    assert "Eiffel" in rewritten


@pytest.mark.parametrize(
    "question",
    [
        "What is perplexity?",
        "Who designed the Statue of Liberty?",
        "How is BM25 computed?",
        "What is min-p sampling and how does it choose candidate tokens?",
        "How long did it take to train the base transformer model?",
    ],
)
def test_standalone_questions_are_left_alone(question: str) -> None:
    assert not is_follow_up(question)
    assert rewrite_query(question, EIFFEL) == question


def test_no_history_means_no_rewrite() -> None:
    assert rewrite_query("How tall is it?", []) == "How tall is it?"


def test_a_chain_of_follow_ups_keeps_the_original_topic() -> None:
    rewritten = rewrite_query("Who painted it?", EIFFEL)
    assert rewritten.startswith("Who painted it? ")
    assert "Eiffel" in rewritten and "330" in rewritten


def test_refusals_add_no_answer_words() -> None:
    turns = [Turn("What is the Eiffel Tower made of?", "I don't know; the passages don't say.")]
    assert rewrite_query("Why?", turns) == "Why? Eiffel Tower made"


def load_follow_up_pairs() -> list[tuple[Turn, str, str]]:
    rows = [json.loads(line) for line in SAMPLE_QA.read_text(encoding="utf-8").splitlines() if line]
    by_id = {row["id"]: row for row in rows}
    pairs = []
    for row in rows:
        if "follow_up_of" in row:
            first = by_id[row["follow_up_of"]]
            answer = first["answers"][0] if first["answers"] else ""
            pairs.append((Turn(first["question"], answer), row["question"], row["standalone"]))
    return pairs


def test_follow_up_rewrites_recover_a_key_word_of_the_standalone_question() -> None:
    pairs = load_follow_up_pairs()
    assert len(pairs) >= 10
    for turn, follow_up, standalone in pairs:
        missing = key_words(standalone) - key_words(follow_up)
        rewritten = rewrite_query(follow_up, [turn])
        assert rewritten.startswith(follow_up), follow_up
        assert missing & key_words(rewritten), (follow_up, rewritten, missing)


def test_questions_of_the_sample_set_that_are_not_follow_ups_stay_unchanged() -> None:
    rows = [json.loads(line) for line in SAMPLE_QA.read_text(encoding="utf-8").splitlines() if line]
    previous = Turn("What does RoPE stand for?", "Rotary position embedding.")
    for row in rows:
        if "follow_up_of" not in row:
            assert rewrite_query(row["question"], [previous]) == row["question"]
        if "standalone" in row:
            assert rewrite_query(row["standalone"], [previous]) == row["standalone"]
