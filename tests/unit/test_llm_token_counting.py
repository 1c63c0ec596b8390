"""The token estimate a remote model's prompts are fitted with when no tokenizer is named (the
comparison with a real tokenizer is in tests/e2e/test_llm_openai_engine.py)."""

from __future__ import annotations

from pathlib import Path

from assistant.llm.token_counting import (
    MESSAGE_OVERHEAD,
    TEMPLATE_OVERHEAD,
    EstimatedCounter,
    token_counter,
)

estimate = EstimatedCounter()


def test_words_count_a_token_per_four_letters_rounded_up() -> None:
    assert estimate.count("The cat sat") == 3
    assert estimate.count(" tokenization") == 3  # 12 letters, the space belongs to the word


def test_digits_and_symbols_count_one_each() -> None:
    assert estimate.count("1234567890") == 10
    assert estimate.count("a.b") == 3
    assert estimate.count("x = 3") == 5  # x, a space, =, a space, 3


def test_runs_of_spaces_count_one_per_four() -> None:
    assert estimate.count("\n\n") == 1
    assert estimate.count("        ") == 2


def test_other_characters_count_their_bytes() -> None:
    assert estimate.count("é") == 2
    assert estimate.count("机器") == 6
    assert estimate.count("😀") == 4


def test_messages_add_their_overheads() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    content = estimate.count("Be brief.") + estimate.count("Hi")
    assert estimate.count_messages(messages) == content + 2 * MESSAGE_OVERHEAD + TEMPLATE_OVERHEAD


def test_no_tokenizer_setting_means_the_estimate(tmp_path: Path) -> None:
    assert isinstance(token_counter("", tmp_path), EstimatedCounter)
