"""The command line's generation flags, stdin, --no-stream, /model and NO_COLOR, with the real
models (the sample corpus ingested once, as in the other end-to-end tests)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

ASK = [sys.executable, "-m", "assistant", "ask"]
# A colour or text style: SGR with parameters. Cursor moves are not styles, nor is a bare reset
# (`ESC[0m`, which prompt_toolkit sends around its prompt even with NO_COLOR).
STYLE = re.compile(r"\x1b\[(?!0?m)[0-9;]*m")


def test_ask_reads_stdin_and_takes_the_generation_flags(
    sample_environment: dict[str, str],
) -> None:
    result = subprocess.run(
        [*ASK, "--json", "--max-tokens", "4", "--temperature", "0"],
        input="What does the KV cache store?\n",
        env=sample_environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["question"] == "What does the KV cache store?"
    assert answer["raw_answer"] and len(answer["raw_answer"].split()) <= 4  # at most 4 tokens


def test_chat_without_streaming_or_colour_shows_the_model(
    sample_environment: dict[str, str],
) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "assistant", "chat", "--session", "plain", "--no-stream"],
        env={**sample_environment, "NO_COLOR": "1"},
        timeout=600,
        encoding="utf-8",
        dimensions=(50, 120),
    )
    child.logfile_read = io.StringIO()  # everything the terminal shows
    child.expect("you›")
    child.sendline("/model")
    child.expect(r"engine +(LanguageModel|LlamaCppModel)")
    child.expect("you›")
    child.sendline("What does the KV cache store?")
    child.expect(["Sources:", "couldn't find"])
    child.expect("you›")
    answered = child.before or ""
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    shown = child.logfile_read.getvalue()
    assert "searching your documents" not in answered  # the live view never started
    assert not STYLE.search(shown), repr(STYLE.search(shown))
    assert "Traceback" not in shown
