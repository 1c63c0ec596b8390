"""A request's conversation: answered as chat answers it (follow-ups, folding into a summary),
nothing written to the store, and summaries remembered so a conversation that comes back with
one more question folds only what is new."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from assistant.answer.memory import Turn
from assistant.answer.pipeline import Answer, Answerer
from assistant.chat.conversation import Folded
from assistant.chat.sessions import Sessions
from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.index.home import Home
from assistant.ingest.pipeline import ingest
from assistant.server.history import ConversationMemory
from tests.fakes import ScriptedModel

DOCUMENT = """# The KV cache

The KV cache stores the keys and values of all previous tokens, for every layer.
It trades memory for compute: each new token costs one forward pass over one position.
"""
ANSWER = "The KV cache stores the keys and values of all previous tokens, for every layer."
QUESTION = "What does the KV cache store?"


class CountingModel(ScriptedModel):
    """Scripted; counts the summaries asked of it (`complete`)."""

    def __init__(self, text: str, context_length: int) -> None:
        super().__init__(text, context_length)
        self.summaries = 0

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> str:
        self.summaries += 1
        return super().complete(messages, max_new_tokens=max_new_tokens)


@pytest.fixture
def home(tmp_path: Path, embedder: Embedder) -> Iterator[Home]:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "kv-cache.md").write_text(DOCUMENT)
    assistant_home = Home(Config.load(environ={}, home=tmp_path / "home"), embedder)
    for _ in ingest(assistant_home, [folder]):
        pass
    yield assistant_home
    assistant_home.close()


def _turns(count: int) -> list[Turn]:
    return [Turn(f"Question {n} about the KV cache and its layers?", ANSWER) for n in range(count)]


def _ask(memory: ConversationMemory, turns: list[Turn]) -> tuple[list[Folded], Answer]:
    events = list(memory.conversation(turns).ask(QUESTION))
    answer = events[-1]
    assert isinstance(answer, Answer)
    return [event for event in events if isinstance(event, Folded)], answer


def test_a_long_conversation_folds_and_its_summary_is_remembered(home: Home) -> None:
    # 400 words of window, 320 kept for the answer: the history's share is 20 words, so every
    # turn but the latest folds.
    model = CountingModel(ANSWER, context_length=400)
    memory = ConversationMemory(Answerer(home, model))
    folds, answer = _ask(memory, _turns(4))
    assert [fold.turns for fold in folds] == [3] and model.summaries == 1
    assert not answer.abstained

    model.summaries = 0
    folds, _ = _ask(memory, _turns(4))  # the same conversation again: nothing new to fold
    assert folds == [] and model.summaries == 0

    folds, _ = _ask(memory, _turns(5))  # one more exchange: only it folds
    assert [fold.turns for fold in folds] == [1] and model.summaries == 1


def test_a_short_conversation_does_not_fold(home: Home) -> None:
    model = CountingModel(ANSWER, context_length=4096)
    folds, _ = _ask(ConversationMemory(Answerer(home, model)), _turns(3))
    assert folds == [] and model.summaries == 0


def test_nothing_is_written_to_the_store(home: Home) -> None:
    model = CountingModel(ANSWER, context_length=400)
    _ask(ConversationMemory(Answerer(home, model)), _turns(4))
    assert Sessions(home.store).list() == []


def test_the_remembered_summaries_are_bounded(home: Home) -> None:
    model = CountingModel(ANSWER, context_length=400)
    memory = ConversationMemory(Answerer(home, model), capacity=2)
    for count in (3, 4, 5, 6):
        _ask(memory, [Turn(f"{count} {turn.question}", turn.answer) for turn in _turns(count)])
    assert len(memory._summaries) == 2
