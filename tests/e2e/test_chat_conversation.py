"""Conversation memory with the real bundled models and greedy decoding.

The history folds into the summary exactly when it overflows its share of the window (no sooner,
no later, and no more turns than needed), the summary holds only what was said, every prompt fits
the window, and a follow-up question retrieves the passages of the topic it refers back to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.answer.memory import Turn, conversation_text, turn_tokens
from assistant.answer.pipeline import Answer, Answerer, Retrieved
from assistant.chat.conversation import Conversation, Folded
from assistant.chat.sessions import Sessions
from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.index.home import Home
from assistant.llm.torch_engine import LanguageModel

pytestmark = pytest.mark.e2e

REPOSITORY = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "What does the KV cache store?",
    "What is perplexity?",
    "What is nucleus sampling?",
    "Why do language models hallucinate?",
    "What is reciprocal rank fusion?",
    "What does quantization do to a model?",
]


@pytest.fixture(scope="module")
def small_window(sample_environment: dict[str, str], embedder: Embedder) -> Iterator[Answerer]:
    """The sample home with a small window, so a few turns overflow the history's share."""
    config = Config.load(
        environ={},
        home=sample_environment["ASSISTANT_HOME"],
        cache_dir=sample_environment["ASSISTANT_CACHE_DIR"],
        context_cap=1024,
        max_new_tokens=64,
        temperature=0.0,
    )
    home = Home(config, embedder)
    yield Answerer(home, LanguageModel.load(config))
    home.close()


def _expected_fold(turns: list[Turn], count: object, share: int) -> int:
    """How many of the oldest turns must go so the rest fit `share` (the latest always stays)."""
    sizes = [turn_tokens(turn, count) for turn in turns]  # type: ignore[arg-type]
    for dropped in range(len(turns)):
        if dropped == len(turns) - 1 or sum(sizes[dropped:]) <= share:
            return dropped
    return 0


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def test_history_folds_exactly_when_it_overflows_its_share(small_window: Answerer) -> None:
    sessions = Sessions(small_window.home.store)
    conversation = Conversation(small_window, sessions, sessions.open("memory-e2e"))
    count = small_window.language_model.count_tokens
    window = small_window.window
    folds = 0
    for question in QUESTIONS:
        session = conversation.session
        before = session.recent_turns()
        share = window.history_budget - count(session.summary)
        expected = _expected_fold(before, count, max(share, 0))
        folded_source = conversation_text(session.summary, before[:expected])

        events = list(conversation.ask(question))

        folded = [event for event in events if isinstance(event, Folded)]
        assert (folded[0].turns if folded else 0) == expected, question
        answer = next(event for event in events if isinstance(event, Answer))
        assert answer.budget is not None
        assert answer.budget.total <= window.context_length - window.answer_reserve
        if folded:
            folds += 1
            summary = folded[0].summary
            assert summary.strip()
            # Only words the folded conversation (or the summary before it) contained.
            unsupported = _words(summary) - _words(folded_source)
            assert len(unsupported) <= max(2, len(_words(summary)) // 10), unsupported
            assert conversation.session.summary == summary
            assert conversation.session.recent_turns()[:-1] == before[expected:]
    assert folds >= 1, "the questions never overflowed the history share: lower context_cap"


def _follow_up_pairs() -> list[tuple[dict[str, str], dict[str, str]]]:
    rows = [
        json.loads(line)
        for line in (REPOSITORY / "evals/sets/sample-qa.jsonl").read_text().splitlines()
        if line.strip()
    ]
    by_id = {row["id"]: row for row in rows}
    return [(by_id[row["follow_up_of"]], row) for row in rows if row.get("follow_up_of")][:2]


@pytest.mark.parametrize(("first", "follow_up"), _follow_up_pairs(), ids=lambda row: row["id"])
def test_a_follow_up_retrieves_the_passages_of_its_topic(
    small_window: Answerer, first: dict[str, str], follow_up: dict[str, str]
) -> None:
    sessions = Sessions(small_window.home.store)
    conversation = Conversation(small_window, sessions, sessions.open(f"follow-{first['id']}"))
    list(conversation.ask(first["question"]))
    events = list(conversation.ask(follow_up["question"]))
    retrieved = next(event for event in events if isinstance(event, Retrieved))
    assert retrieved.query != follow_up["question"]  # rewritten to stand alone
    sources = [Path(passage.source).name for passage in retrieved.passages[:3]]
    assert Path(follow_up["source"]).name in sources, (retrieved.query, sources)
