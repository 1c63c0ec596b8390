"""Checked answers written as chat messages, and a request's messages read back as turns."""

from __future__ import annotations

import pytest

from assistant.answer.memory import Turn
from assistant.answer.pipeline import Answer
from assistant.grounding.checker import GroundedAnswer, GroundingReason, SentenceCheck
from assistant.index.passage import Passage
from assistant.server.messages import message_text, question_and_turns, recorded_answer
from assistant.server.protocol import Message, ProtocolError

PASSAGES = (
    Passage(
        1, "The KV cache stores keys and values.", "/notes/kv.md", 3, 4, None, "KV > What", 0.5
    ),
    Passage(2, "Perplexity is exp of the loss.", "/notes/ppl.pdf", None, None, 2, "", 0.4),
)


def _sentence(text: str, supported: bool, citations: tuple[int, ...] = ()) -> SentenceCheck:
    display = f"{text} [{citations[0]}]" if citations else text
    return SentenceCheck(text, supported, citations, (), 0.5, True, display)


def _answer(
    sentences: tuple[SentenceCheck, ...],
    reason: GroundingReason | None = None,
    abstained: bool = False,
    text: str | None = None,
) -> Answer:
    shown = text if text is not None else " ".join(sentence.display for sentence in sentences)
    grounded = GroundedAnswer(shown, abstained, reason, sentences, raw_answer="raw")
    return Answer("q", "q", grounded, PASSAGES, "scripted")


def test_a_checked_answer_shows_its_citations_marks_and_sources() -> None:
    answer = _answer(
        (
            _sentence("The cache stores keys and values.", True, (1,)),
            _sentence("It was invented in 1850.", False),
            _sentence("Perplexity is exp of the loss.", True, (2,)),
        )
    )
    assert message_text(answer) == (
        "The cache stores keys and values. [1] It was invented in 1850. (not found in your "
        "documents) Perplexity is exp of the loss. [2]\n\n"
        "Sources:\n[1] /notes/kv.md:3-4 — KV > What\n[2] /notes/ppl.pdf p.2"
    )


def test_quotes_say_they_are_quotes() -> None:
    answer = _answer(
        (_sentence("The KV cache stores keys and values.", True, (1,)),), GroundingReason.EXTRACTIVE
    )
    assert message_text(answer).startswith("Quoted from your documents")


def test_an_abstention_lists_the_closest_passages() -> None:
    answer = _answer(
        (), GroundingReason.WEAK_RETRIEVAL, abstained=True, text="I couldn't find this."
    )
    assert message_text(answer) == (
        "I couldn't find this.\n\nClosest passages (they do not answer it):\n"
        "- /notes/kv.md:3-4 — KV > What\n- /notes/ppl.pdf p.2"
    )


@pytest.mark.parametrize(
    "answer",
    [
        _answer(
            (
                _sentence("The cache stores keys and values.", True, (1,)),
                _sentence("It was invented in 1850.", False),
            )
        ),
        _answer((_sentence("The KV cache stores.", True, (1,)),), GroundingReason.EXTRACTIVE),
        _answer((), GroundingReason.WEAK_RETRIEVAL, abstained=True, text="I couldn't find it."),
    ],
)
def test_an_answer_sent_back_as_history_is_the_answer_chat_records(answer: Answer) -> None:
    assert recorded_answer(message_text(answer)) == answer.text


def test_a_draft_the_client_kept_is_not_part_of_the_answer() -> None:
    kept = (
        '<details type="reasoning" done="true">\n<summary>Thought</summary>\n> The draft.\n'
        "</details>\nIt stores keys. [1]\n\nSources:\n[1] /notes/kv.md:3-4"
    )
    assert recorded_answer(kept) == "It stores keys. [1]"
    assert recorded_answer("<think>draft</think>It stores keys.") == "It stores keys."


def test_other_text_comes_back_unchanged() -> None:
    assert recorded_answer("Paris.\n\nSources: my memory") == "Paris.\n\nSources: my memory"


def test_the_messages_become_the_question_and_the_answered_turns() -> None:
    messages = [
        Message("system", "Be brief."),
        Message("user", "What is a KV cache?"),
        Message("assistant", "It stores keys. [1]\n\nSources:\n[1] /notes/kv.md:3-4"),
        Message("user", "Never answered"),
        Message("user", "And perplexity?"),
        Message("assistant", "Exp of the loss."),
        Message("tool", "ignored"),
        Message("user", "  How is it computed?  "),
    ]
    question, turns = question_and_turns(messages)
    assert question == "How is it computed?"
    assert turns == [
        Turn("What is a KV cache?", "It stores keys. [1]"),
        Turn("And perplexity?", "Exp of the loss."),
    ]


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([Message("user", "Hi"), Message("assistant", "Hello")], "last message must be the user"),
        ([Message("user", "   ")], "is empty"),
        ([], "last message must be the user"),
    ],
)
def test_a_conversation_must_end_with_a_question(messages: list[Message], error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        question_and_turns(messages)
