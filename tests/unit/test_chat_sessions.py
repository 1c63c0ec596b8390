from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answer.memory import Turn
from assistant.chat.sessions import Sessions
from assistant.errors import InputError
from assistant.index.store import Store


@pytest.fixture
def sessions(tmp_path: Path) -> Sessions:
    return Sessions(Store(f"sqlite:///{tmp_path / 'a.db'}"))


def test_turns_persist_and_resume(sessions: Sessions) -> None:
    session = sessions.open("work")
    sessions.record(session, "What is a KV cache?", "It stores keys [1].", citations=[{"n": 1}])
    sessions.record(session, "How big is it?", "", interrupted=True)
    resumed = sessions.open("work")
    assert [t.question for t in resumed.history] == ["What is a KV cache?", "How big is it?"]
    assert resumed.history[0].citations == [{"n": 1}]
    assert resumed.history[1].interrupted
    # An interrupted turn is on record but not fed back to the model.
    assert resumed.recent_turns() == [Turn("What is a KV cache?", "It stores keys [1].")]
    # One the model server broke off halfway is fed back with what of it was checked.
    sessions.record(resumed, "And values?", "It stores values [1].", interrupted=True)
    assert sessions.open("work").recent_turns()[-1] == Turn("And values?", "It stores values [1].")


def test_fold_and_reset(sessions: Sessions) -> None:
    session = sessions.open("s")
    for number in range(3):
        sessions.record(session, f"q{number}", f"a{number}")
    sessions.fold(session, 2, "We talked about q0 and q1.")
    resumed = sessions.open("s")
    assert resumed.summary == "We talked about q0 and q1."
    assert resumed.recent_turns() == [Turn("q2", "a2")]
    sessions.reset(resumed)
    sessions.record(resumed, "fresh", "start")
    again = sessions.open("s")
    assert again.summary == "" and again.recent_turns() == [Turn("fresh", "start")]
    assert len(again.history) == 4  # the old conversation stays on record


def test_list_and_delete(sessions: Sessions) -> None:
    sessions.record(sessions.open("a"), "q", "a")
    sessions.open("b")
    assert sorted((info.name, info.turns) for info in sessions.list()) == [("a", 1), ("b", 0)]
    sessions.delete("a")
    assert [info.name for info in sessions.list()] == ["b"]
    with pytest.raises(InputError, match="no session called"):
        sessions.delete("a")
    with pytest.raises(InputError):
        sessions.open("  ")


def test_find_reads_an_existing_session_and_creates_none(sessions: Sessions) -> None:
    sessions.record(sessions.open("a"), "q", "a", citations=[{"n": 1}])
    found = sessions.find("a")
    assert [(t.question, t.citations) for t in found.history] == [("q", [{"n": 1}])]
    with pytest.raises(InputError, match="no session called 'b'"):
        sessions.find("b")
    assert [info.name for info in sessions.list()] == ["a"]


def test_a_session_keeps_its_scope_until_cleared_or_deleted(sessions: Sessions) -> None:
    session = sessions.open("scoped")
    assert session.scope == ()
    sessions.set_scope(session, ["/notes/work", "/notes/a.md"])
    assert session.scope == ("/notes/work", "/notes/a.md")
    sessions.reset(session)  # a new conversation searches where the session did
    assert sessions.open("scoped").scope == ("/notes/work", "/notes/a.md")
    assert sessions.open("other").scope == ()
    sessions.set_scope(session, [])
    assert sessions.find("scoped").scope == ()

    sessions.set_scope(session, ["/notes/work"])
    sessions.delete("scoped")
    again = sessions.open("scoped")
    assert again.scope == ()  # a new session of that name starts unscoped
    assert sessions.store.get_setting(f"session_scope:{session.id}") is None
    sessions.store.set_setting(f"session_scope:{again.id}", "{damaged")
    assert sessions.find("scoped").scope == ()
