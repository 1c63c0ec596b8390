"""`assistant chat` driven through a pseudo-terminal and through a pipe, with the real models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

PROMPT = "you›"


def _spawn(environment: dict[str, str], session: str):  # type: ignore[no-untyped-def]
    pexpect = pytest.importorskip("pexpect")
    return pexpect.spawn(
        sys.executable,
        ["-m", "assistant", "chat", "--session", session],
        env=environment,
        timeout=600,
        encoding="utf-8",
        dimensions=(50, 120),
    )


def test_chat_in_a_terminal(sample_environment: dict[str, str]) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = _spawn(sample_environment, "pty")
    child.expect(PROMPT)
    child.sendline("What does the KV cache store?")
    child.expect(["Sources:", "couldn't find"])
    child.expect(PROMPT)
    child.sendline("How much memory does it use?")  # a follow-up
    child.expect(PROMPT)
    child.sendline("/sources")
    child.expect(r"\[1\]")
    child.expect(PROMPT)
    child.sendline("/budget")
    child.expect("window")
    child.expect(PROMPT)
    child.sendline("/frobnicate")
    child.expect("Unknown command")
    child.expect(PROMPT)
    child.sendline("Explain in detail how nucleus sampling chooses the next token.")
    child.expect("thinking")
    child.sendintr()  # Ctrl-C during the answer stops it and returns to the prompt
    child.expect("stopped")
    child.expect(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in (child.before or "")

    resumed = _spawn(sample_environment, "pty")
    resumed.expect(r"Resuming: .*3.* earlier turn")
    resumed.expect(PROMPT)  # the recap of earlier turns does not use the prompt's marker
    resumed.sendline("/history")
    resumed.expect(r"1\..*What does the KV cache store")
    resumed.expect(r"3\..*nucleus sampling")
    resumed.expect(PROMPT)
    resumed.sendcontrol("d")  # Ctrl-D at the prompt quits
    resumed.expect(pexpect.EOF)
    resumed.close()
    assert resumed.exitstatus == 0


def test_chat_history_is_recalled_in_the_next_session(sample_environment: dict[str, str]) -> None:
    pexpect = pytest.importorskip("pexpect")
    first = _spawn(sample_environment, "history-1")
    first.expect(PROMPT)
    first.sendline("Who painted the Mona Lisa?")  # abstains before generating: quick
    first.expect("couldn't find")
    first.expect(PROMPT)
    first.sendcontrol("d")
    first.expect(pexpect.EOF)
    first.close()
    assert first.exitstatus == 0

    second = _spawn(sample_environment, "history-2")  # another session, the same home
    second.expect(PROMPT)
    second.send("\x1b[A")  # up-arrow: the last question of the session before
    second.expect("Mona Lisa")
    second.send("\r")
    second.expect("couldn't find")
    second.expect(PROMPT)
    second.sendcontrol("d")
    second.expect(pexpect.EOF)
    second.close()
    assert second.exitstatus == 0


def test_chat_reads_questions_from_a_pipe(sample_environment: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "chat", "--session", "pipe"],
        input="Who wrote the novel Frankenstein?\n/exit\n",
        env=sample_environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "I couldn't find this in your documents." in result.stdout
    assert "Traceback" not in result.stderr
    # Questions from a pipe are not typed ones: the prompt's history is not read or written.
    history = Path(sample_environment["ASSISTANT_HOME"]) / "chat_history"
    assert "Who wrote the novel Frankenstein?" not in (
        history.read_text() if history.exists() else ""
    )

    sessions = subprocess.run(
        [sys.executable, "-m", "assistant", "sessions", "--json"],
        env=sample_environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert '"pipe"' in sessions.stdout


def test_chat_with_nothing_ingested_says_how_to_ingest(
    sample_environment: dict[str, str], tmp_path: object
) -> None:
    environment = {**sample_environment, "ASSISTANT_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "chat"],
        input="hello\n", env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "assistant ingest" in result.stderr
