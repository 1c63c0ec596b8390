"""Counting the tokens of a model that runs elsewhere: with its tokenizer when one is named
(`ASSISTANT_TOKENIZER`), else with a stated estimate that errs on the high side.

A model on an OpenAI-compatible server is never loaded here, yet every prompt must fit its
context window before it is sent: a server refusing a prompt as too long (llama.cpp, vLLM) or
silently dropping its start (Ollama) is our bug. The model's own tokenizer counts exactly. Without
one, the estimate counts the text piece by piece:

- a word of ASCII letters (with the space before it): one token per `LETTERS_PER_TOKEN` (4)
  letters, rounded up: tokenizers keep common words whole and split rare ones into a few pieces;
- every digit, ASCII symbol and run of up to four other spaces or newlines: one token (many
  tokenizers split numbers into single digits);
- every other character: its UTF-8 bytes, the most tokens a byte-level tokenizer can need;
- `MESSAGE_OVERHEAD` tokens for each message (role markers, separators) and `TEMPLATE_OVERHEAD`
  for the prompt (the reply's opening, or a default system text some templates add).

On the sample corpus that is 1.29 to 1.51 times the bundled model's own count, and it is above
it on the digits, code, tables, accented and Chinese text in `tests/e2e/test_llm_openai_engine.py`;
long strings of random letters (base64) can run higher. What is lost is context room, never
correctness; name the tokenizer to get the room back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import ModelError
from assistant.models import resolve_language_model

LETTERS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 8
TEMPLATE_OVERHEAD = 48
# A word (with the space before it), a run of other spaces, or one other character.
_PIECE = re.compile(r" ?[A-Za-z]+|[ \t\r\n\f\v]+|.", re.DOTALL)


class TokenCounter(Protocol):
    """Tokens of a text alone, and of a whole chat prompt (the reply's opening included)."""

    description: str

    def count(self, text: str) -> int: ...

    def count_messages(self, messages: Sequence[Mapping[str, str]]) -> int: ...


class EstimatedCounter:
    """The stated estimate (see the module docstring): no tokenizer needed."""

    description = "estimated on the high side (ASSISTANT_TOKENIZER counts exactly)"

    def count(self, text: str) -> int:
        tokens = 0
        for match in _PIECE.finditer(text):
            piece = match.group()
            if piece[-1].isascii() and piece[-1].isalpha():
                tokens += math.ceil(len(piece.lstrip(" ")) / LETTERS_PER_TOKEN)
            elif piece.isascii():
                tokens += math.ceil(len(piece) / 4)  # a symbol, a digit or a run of spaces
            else:
                tokens += len(piece.encode("utf-8"))
        return tokens

    def count_messages(self, messages: Sequence[Mapping[str, str]]) -> int:
        content = sum(self.count(message["content"]) for message in messages)
        return content + MESSAGE_OVERHEAD * len(messages) + TEMPLATE_OVERHEAD


class TokenizerCounter:
    """Counts with the model's own tokenizer and, where it has one, its chat template: exact but
    for a rare run of characters the server's tokenizer splits differently (a token or so)."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tokenizer = tokenizer
        self.description = f"the tokenizer of {name}"

    def count(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_messages(self, messages: Sequence[Mapping[str, str]]) -> int:
        """The chat-templated prompt's tokens, as the server builds it; without a template,
        each message's tokens plus the estimate's overheads."""
        if not getattr(self._tokenizer, "chat_template", None):
            content = sum(self.count(message["content"]) for message in messages)
            return content + MESSAGE_OVERHEAD * len(messages) + TEMPLATE_OVERHEAD
        text = self._tokenizer.apply_chat_template(
            [dict(message) for message in messages], add_generation_prompt=True, tokenize=False
        )
        return self.count(text)  # the template already holds the special tokens


def token_counter(setting: str, models_dir: Path) -> TokenCounter:
    """The counter for `ASSISTANT_TOKENIZER`: empty for the estimate, else anything `--model`
    takes for a local model (a hub id, a folder, a .gguf file, `bundled:...`)."""
    if not setting:
        return EstimatedCounter()
    try:
        source = resolve_language_model(setting)
        if source.gguf_file is not None:
            from assistant.llm.weights import gguf_tokenizer

            tokenizer, _ = gguf_tokenizer(source, models_dir)
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source.location)
    except (ModelError, OSError, ValueError, KeyError) as error:
        raise ModelError(
            f"cannot load the tokenizer {setting!r} (ASSISTANT_TOKENIZER): {error}"
        ) from error
    return TokenizerCounter(tokenizer, setting)
