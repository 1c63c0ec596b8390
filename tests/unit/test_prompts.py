from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import ConfigError
from assistant.prompts import PACKAGE_PROMPTS, fill_prompt, load_prompt

REPOSITORY_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


def test_package_prompts_are_the_repository_prompts() -> None:
    for name in ("system", "answer", "summarize"):
        assert (PACKAGE_PROMPTS / f"{name}.md").read_text() == (
            REPOSITORY_PROMPTS / f"{name}.md"
        ).read_text()
        assert load_prompt(name)


def test_fill_prompt_fills_and_complains() -> None:
    text = fill_prompt("answer", passages="[1] (a.md)\nText {with braces}", question="Why?")
    assert "[1] (a.md)" in text and "Why?" in text and "$" not in text
    with pytest.raises(ConfigError, match=r"\$question"):
        fill_prompt("answer", passages="x")


def test_prompts_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "system.md").write_text("Be brief.\n")
    monkeypatch.setenv("ASSISTANT_PROMPTS_DIR", str(tmp_path))
    assert load_prompt("system") == "Be brief."
    with pytest.raises(ConfigError, match="cannot read the prompt file"):
        load_prompt("missing")
