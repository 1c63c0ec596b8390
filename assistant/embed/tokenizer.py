"""The exported embedder's tokenizer, read with the `tokenizers` package alone.

transformers' AutoTokenizer imports torch, the largest part of a one-shot command's start,
and the exported backends need torch for nothing else. This reads the model's
`tokenizer.json` with `tokenizers` (the library AutoTokenizer's fast tokenizers wrap) and
tokenizes as sentence-transformers asks AutoTokenizer to: truncated to the model's
max_seq_length, padded to the longest text of the batch, with the padding token and sides of
`tokenizer_config.json`. The limits stored in `tokenizer.json` itself are dropped, as
AutoTokenizer drops them. A folder without `tokenizer.json` (only a vocabulary) goes through
AutoTokenizer once, which converts it; the ids stay the same either way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

# The exported model's inputs, in the order it was traced with (export.py, `_input_names`).
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class EmbeddingTokenizer:
    """`batch(texts)` gives the model's padded int64 inputs; `count(texts)` counts tokens.

    It takes `tokenizer` over and sets it up for batches; counting (chunk sizes, at ingest) gets
    its own copy when first asked, set up once too: changing one tokenizer's settings per call
    would race when two threads (the server's) tokenize at the same time."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_tokens: int,
        *,
        pad_token: str,
        padding_side: str = "right",
        truncation_side: str = "right",
    ) -> None:
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ValueError(f"the padding token {pad_token!r} is not in the vocabulary")
        self._serialized = tokenizer.to_str()
        tokenizer.enable_truncation(
            max_tokens, stride=0, strategy="longest_first", direction=truncation_side
        )
        tokenizer.enable_padding(
            direction=padding_side, pad_id=pad_id, pad_type_id=0, pad_token=pad_token
        )
        self._batching = tokenizer
        self.max_tokens = max_tokens

    @functools.cached_property
    def _counting(self) -> Tokenizer:
        counting = Tokenizer.from_str(self._serialized)
        counting.no_truncation()
        counting.no_padding()
        return counting

    @classmethod
    def from_folder(cls, location: str, max_tokens: int) -> EmbeddingTokenizer:
        """The tokenizer of a local model folder, as sentence-transformers sets it up."""
        root = Path(location)
        settings = _read_json(root / "tokenizer_config.json")
        special = _read_json(root / "special_tokens_map.json")
        if (root / "tokenizer.json").is_file():
            tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        else:
            from transformers import AutoTokenizer  # converts a vocabulary-only folder

            tokenizer = AutoTokenizer.from_pretrained(location).backend_tokenizer
        pad_token = _token_text(settings.get("pad_token") or special.get("pad_token"))
        if not pad_token and tokenizer.padding:
            pad_token = str(tokenizer.padding.get("pad_token") or "")
        if not pad_token:
            raise ValueError("the tokenizer has no padding token")
        return cls(
            tokenizer,
            max_tokens,
            pad_token=pad_token,
            padding_side=str(settings.get("padding_side") or "right"),
            truncation_side=str(settings.get("truncation_side") or "right"),
        )

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, without special tokens and without truncation."""
        encoded = self._counting.encode_batch(list(texts), add_special_tokens=False)
        return [len(item.ids) for item in encoded]

    def batch(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """One batch of model inputs by name: ids, attention mask and token types."""
        encoded = self._batching.encode_batch(list(texts))
        return {
            "input_ids": np.array([item.ids for item in encoded], dtype=np.int64),
            "attention_mask": np.array([item.attention_mask for item in encoded], dtype=np.int64),
            "token_type_ids": np.array([item.type_ids for item in encoded], dtype=np.int64),
        }


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, dict) else {}


def _token_text(token: Any) -> str:
    """A special token as the config files write it: a string or {"content": ...}."""
    if isinstance(token, dict):
        return str(token.get("content") or "")
    return str(token or "")
