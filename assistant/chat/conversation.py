"""A conversation: answers in the context of earlier turns, remembered in a session.

Before each question, turns that no longer fit the history's share of the window are folded into
the running summary (by the language model with `prompts/summarize.md`, checked, with an
extractive fallback), so the prompt carries the summary plus the latest turns verbatim. Follow-up
questions are rewritten into standalone retrieval queries by the answerer. Every turn is recorded,
including an interrupted one, so nothing typed is lost: stopped (Ctrl-C) before it was checked,
with no answer; or broken off by the model server, with the checked part of the answer.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.answer.memory import fold_into_summary, turns_to_fold
from assistant.answer.pipeline import Answer, Answerer, AnswerEvent
from assistant.chat.sessions import Session, Sessions
from assistant.index.scope import Scope, resolve_scope
from assistant.prompts import fill_prompt

if TYPE_CHECKING:
    from assistant.llm.base import ChatModel

SUMMARY_TOKENS = 120  # longest model summary we ask for


@dataclass(frozen=True)
class Folded:
    """Older turns were folded into the running summary before this question."""

    turns: int
    summary: str


class Conversation:
    """Asks questions within one session."""

    def __init__(self, answerer: Answerer, sessions: Sessions, session: Session) -> None:
        self.answerer = answerer
        self.sessions = sessions
        self.session = session
        self.last_answer: Answer | None = None
        # Where questions are searched (None: every document); the session's own when resumed.
        self.scope: Scope | None = Scope(session.scope) if session.scope else None

    @property
    def language_model(self) -> ChatModel:
        return self.answerer.language_model

    def summarize(self, conversation: str) -> str:
        """The language model's summary of `conversation` (checked by the caller)."""
        prompt = fill_prompt("summarize", conversation=conversation)
        return self.language_model.complete(
            [{"role": "user", "content": prompt}], max_new_tokens=SUMMARY_TOKENS
        )

    def fold_if_needed(self) -> Folded | None:
        """Fold the oldest turns into the summary when the history overflows its share."""
        count = self.language_model.count_tokens
        budget = self.answerer.window.history_budget - count(self.session.summary)
        folding = turns_to_fold(self.session.recent_turns(), count, max(budget, 0))
        if not folding:
            return None
        summary = fold_into_summary(self.session.summary, folding, self.summarize)
        self.sessions.fold(self.session, len(folding), summary)
        return Folded(len(folding), summary)

    def search_in(self, paths: Sequence[str | os.PathLike[str]]) -> Scope | None:
        """Search only the documents under `paths` from now on (no paths: every document again);
        returns the scope. `InputError` names a path under which nothing is ingested (the scope
        is then left as it was)."""
        self.set_scope(resolve_scope(paths, self.answerer.home.store))
        return self.scope

    def set_scope(self, scope: Scope | None) -> None:
        """Search only in `scope` from now on (None: every document), and remember it in the
        session, so that resuming it searches there again."""
        self.scope = scope
        self.sessions.set_scope(self.session, scope.paths if scope is not None else ())

    def ask(
        self, question: str, *, k: int | None = None
    ) -> Generator[Folded | AnswerEvent, None, None]:
        """Like `Answerer.ask`, within this conversation and its scope; the turn is recorded at
        the end."""
        folded = self.fold_if_needed()
        if folded is not None:
            yield folded
        final: Answer | None = None
        events = self.answerer.ask(
            question,
            turns=self.session.recent_turns(),
            summary=self.session.summary,
            k=k,
            scope=self.scope,
        )
        try:
            for event in events:
                if isinstance(event, Answer):
                    final = event
                yield event
        finally:
            events.close()
            if final is None:
                self.sessions.record(self.session, question, "", interrupted=True)
            else:
                self.last_answer = final
                self.sessions.record(
                    self.session,
                    question,
                    final.text,
                    abstained=final.abstained,
                    interrupted=final.incomplete,
                    citations=final.as_dict()["citations"],
                )

    def reset(self) -> None:
        self.sessions.reset(self.session)
        self.last_answer = None
