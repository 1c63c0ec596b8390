"""Chat sessions kept in the store: every turn, its citations, and the running summary.

A session has a name, a list of turns (question, checked answer, cited passages), a running
summary of the turns folded out of the prompt, and a conversation number: `/reset` starts a new
conversation in the same session, so earlier turns stay on record but no longer feed the prompt.
It also keeps its scope (chat's `/in PATH`), so a resumed session searches where it left off; the
scope lives in the store's `settings` under the session's id (ids are never reused), which needs
no change to the sessions table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from assistant.answer.memory import Turn
from assistant.errors import InputError
from assistant.index.schema import messages, sessions, settings
from assistant.index.store import Store


@dataclass(frozen=True)
class SessionInfo:
    name: str
    turns: int
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class RecordedTurn:
    question: str
    answer: str
    abstained: bool
    interrupted: bool
    citations: list[dict[str, Any]]
    conversation: int
    created_at: float


@dataclass
class Session:
    """One named conversation, loaded from the store; change it only through `Sessions`."""

    id: int
    name: str
    summary: str
    folded: int  # turns of the current conversation folded into the summary
    conversation: int
    history: list[RecordedTurn] = field(default_factory=list)
    scope: tuple[str, ...] = ()  # the paths searched (`Scope.paths`); empty: every document

    def current(self) -> list[RecordedTurn]:
        return [turn for turn in self.history if turn.conversation == self.conversation]

    def recent_turns(self) -> list[Turn]:
        """The current conversation's turns not yet folded into the summary, oldest first; a turn
        stopped before any answer was checked is left out (one broken off halfway keeps what was
        checked)."""
        turns = [
            Turn(t.question, t.answer) for t in self.current() if t.answer or not t.interrupted
        ]
        return turns[self.folded :]


class Sessions:
    """Create, resume, list and delete sessions in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open(self, name: str) -> Session:
        """The session called `name`, created empty if it does not exist yet."""
        name = name.strip()
        if not name:
            raise InputError("a session name cannot be empty")
        with self.store.transaction() as connection:
            row = connection.execute(select(sessions).where(sessions.c.name == name)).first()
            if row is None:
                now = time.time()
                connection.execute(
                    insert(sessions).values(
                        name=name, summary="", folded=0, conversation=1,
                        created_at=now, updated_at=now,
                    )
                )  # fmt: skip
                row = connection.execute(select(sessions).where(sessions.c.name == name)).one()
            return _loaded(connection, row)

    def find(self, name: str) -> Session:
        """The existing session called `name` (InputError if there is none); writes nothing."""
        with self.store.transaction() as connection:
            row = connection.execute(select(sessions).where(sessions.c.name == name)).first()
            if row is None:
                raise InputError(f"no session called {name!r}; `assistant sessions` lists them")
            return _loaded(connection, row)

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
        """Append one turn (also an interrupted one: nothing typed is lost)."""
        now = time.time()
        cited = citations or []
        with self.store.transaction() as connection:
            connection.execute(
                insert(messages).values(
                    session_id=session.id,
                    conversation=session.conversation,
                    question=question,
                    answer=answer,
                    abstained=int(abstained),
                    interrupted=int(interrupted),
                    citations=json.dumps(cited),
                    created_at=now,
                )
            )
            connection.execute(
                update(sessions).where(sessions.c.id == session.id).values(updated_at=now)
            )
        session.history.append(
            RecordedTurn(question, answer, abstained, interrupted, cited, session.conversation, now)
        )

    def fold(self, session: Session, turns: int, summary: str) -> None:
        """Record that `turns` more turns now live in `summary`."""
        with self.store.transaction() as connection:
            connection.execute(
                update(sessions)
                .where(sessions.c.id == session.id)
                .values(summary=summary, folded=session.folded + turns, updated_at=time.time())
            )
        session.folded += turns
        session.summary = summary

    def reset(self, session: Session) -> None:
        """Start a new conversation in the same session: no summary, no recent turns."""
        with self.store.transaction() as connection:
            connection.execute(
                update(sessions)
                .where(sessions.c.id == session.id)
                .values(
                    summary="",
                    folded=0,
                    conversation=session.conversation + 1,
                    updated_at=time.time(),
                )
            )
        session.conversation += 1
        session.summary = ""
        session.folded = 0

    def set_scope(self, session: Session, paths: Sequence[str]) -> None:
        """Remember where the session searches (resolved paths; none: every document)."""
        self.store.set_setting(_scope_key(session.id), json.dumps(list(paths)))
        session.scope = tuple(paths)

    def list(self) -> list[SessionInfo]:
        count = func.count(messages.c.id)
        with self.store.transaction() as connection:
            rows = connection.execute(
                select(sessions.c.name, sessions.c.created_at, sessions.c.updated_at, count)
                .select_from(sessions.outerjoin(messages, messages.c.session_id == sessions.c.id))
                .group_by(sessions.c.id)
                .order_by(sessions.c.updated_at.desc())
            ).all()
        return [SessionInfo(row[0], int(row[3]), row[1], row[2]) for row in rows]

    def delete(self, name: str) -> None:
        with self.store.transaction() as connection:
            found = connection.execute(
                select(sessions.c.id).where(sessions.c.name == name)
            ).scalar_one_or_none()
            if found is None:
                raise InputError(f"no session called {name!r}; `assistant sessions` lists them")
            connection.execute(delete(messages).where(messages.c.session_id == found))
            connection.execute(delete(settings).where(settings.c.key == _scope_key(found)))
            connection.execute(delete(sessions).where(sessions.c.id == found))


def _loaded(connection: Connection, row: Row[Any]) -> Session:
    """The session of a `sessions` row, with every recorded turn, oldest first."""
    history = [
        RecordedTurn(
            question=message.question,
            answer=message.answer,
            abstained=bool(message.abstained),
            interrupted=bool(message.interrupted),
            citations=json.loads(message.citations),
            conversation=message.conversation,
            created_at=message.created_at,
        )
        for message in connection.execute(
            select(messages).where(messages.c.session_id == row.id).order_by(messages.c.id)
        )
    ]
    stored = connection.execute(
        select(settings.c.value).where(settings.c.key == _scope_key(row.id))
    ).scalar_one_or_none()
    scope = _scope_paths(stored)
    return Session(row.id, row.name, row.summary, row.folded, row.conversation, history, scope)


def _scope_key(session_id: int) -> str:
    return f"session_scope:{session_id}"


def _scope_paths(stored: str | None) -> tuple[str, ...]:
    """The paths of a stored scope; none (every document) when there is none or it is damaged."""
    try:
        paths = json.loads(stored) if stored is not None else []
    except ValueError:
        return ()
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        return ()
    return tuple(paths)
