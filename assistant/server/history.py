"""A request's conversation, answered as `assistant chat` answers one, without storing it.

An OpenAI client sends the whole conversation with every request, so the server keeps no session:
each request builds a `Conversation` (the chat's own class: follow-ups rewritten for retrieval,
older turns folded into a summary when they overflow the history's share of the window) over a
session that lives in memory for that request and writes nothing to the store.

Folding asks the model for a summary, and a client resends the same early turns with every
question; so the summaries are remembered (a small LRU cache keyed by the turns they cover), and
a longer conversation starts from the summary of its longest remembered beginning, folding only
the turns after it, as chat folds one turn at a time. A conversation therefore gets the same
summary whether it reaches the server in one request or question by question.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from assistant.answer.memory import Turn
from assistant.answer.pipeline import Answerer
from assistant.chat.conversation import Conversation
from assistant.chat.sessions import RecordedTurn, Session, Sessions
from assistant.index.store import Store

REMEMBERED_SUMMARIES = 256


class ConversationMemory:
    """Builds each request's conversation; remembers the summaries folding made."""

    def __init__(self, answerer: Answerer, capacity: int = REMEMBERED_SUMMARIES) -> None:
        self.answerer = answerer
        self.capacity = capacity
        self._summaries: OrderedDict[str, str] = OrderedDict()  # beginning's key -> summary

    def conversation(self, turns: Sequence[Turn]) -> Conversation:
        """A conversation holding `turns`, with the summary of its longest remembered
        beginning already folded."""
        keys = _prefix_keys(turns)
        folded, summary = 0, ""
        for count in range(len(turns) - 1, 0, -1):  # the latest turn is never folded
            remembered = self._summaries.get(keys[count])
            if remembered is not None:
                self._summaries.move_to_end(keys[count])
                folded, summary = count, remembered
                break
        history = [
            RecordedTurn(turn.question, turn.answer, False, False, [], 1, 0.0) for turn in turns
        ]
        session = Session(0, "request", summary, folded, 1, history)
        sessions = _RequestSessions(self.answerer.home.store, self, keys)
        return Conversation(self.answerer, sessions, session)

    def remember(self, key: str, summary: str) -> None:
        self._summaries[key] = summary
        self._summaries.move_to_end(key)
        while len(self._summaries) > self.capacity:
            self._summaries.popitem(last=False)


class _RequestSessions(Sessions):
    """The one session of a request, changed in memory only: a fold is remembered by the
    `ConversationMemory`, a recorded turn stays in the request's session object."""

    def __init__(self, store: Store, memory: ConversationMemory, keys: Sequence[str]) -> None:
        super().__init__(store)
        self.memory = memory
        self.keys = keys  # keys[n]: the request's first n turns

    def record(
        self,
        session: Session,
        question: str,
        answer: str,
        *,
        abstained: bool = False,
        interrupted: bool = False,
        citations: list[dict[str, Any]] | None = None,
    ) -> None:
        session.history.append(
            RecordedTurn(
                question, answer, abstained, interrupted, citations or [], session.conversation, 0.0
            )
        )

    def fold(self, session: Session, turns: int, summary: str) -> None:
        session.folded += turns
        session.summary = summary
        if session.folded < len(self.keys):
            self.memory.remember(self.keys[session.folded], summary)

    def reset(self, session: Session) -> None:
        session.conversation += 1
        session.summary = ""
        session.folded = 0

    def set_scope(self, session: Session, paths: Sequence[str]) -> None:
        session.scope = tuple(paths)  # each request sends its own scope


def _prefix_keys(turns: Sequence[Turn]) -> list[str]:
    """keys[n] identifies the first n turns (a hash chain, so each key costs one step)."""
    keys = [""]
    digest = hashlib.sha256()
    for turn in turns:
        digest.update(
            f"{len(turn.question)}:{turn.question}{len(turn.answer)}:{turn.answer}".encode()
        )
        keys.append(digest.copy().hexdigest())
    return keys
