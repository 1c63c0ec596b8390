"""Tests for assistant.embed.tokenizer: the ids equal transformers' AutoTokenizer's, called as
sentence-transformers calls it, on the bundled model's own tokenizer files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.config import Config
from assistant.embed.tokenizer import INPUT_NAMES, EmbeddingTokenizer
from assistant.models import resolve_embedder
from tests.conftest import SAMPLE_CORPUS

MAX_TOKENS = 256  # the bundled model's max_seq_length

ODD_TEXTS = [
    "",
    "   ",
    "  spaced\tout\n text ",
    "Ünïcödé façade naïve café résumé ÅNGSTRÖM İstanbul",
    "東京 and 北京 are cities; emoji 😀 and symbols ∑ ≤ ≠",
    "zero\u200bwidth\u00a0space and ligature \ufb01le",
    "[CLS] special [SEP] tokens [PAD] in [MASK] text [UNK]",
    "x" * 300,  # one word longer than WordPiece's 100-character limit
    "word " * 400,  # longer than the model's limit: truncated
]


def real_texts() -> list[str]:
    """The sample corpus's paragraphs (a few hundred, with their markup) and whole files, which
    run past the model's limit."""
    texts: list[str] = []
    for path in sorted(SAMPLE_CORPUS.iterdir()):
        if path.suffix in (".md", ".rst", ".txt", ".html"):
            content = path.read_text(encoding="utf-8")
            texts += [part.strip() for part in re.split(r"\n\s*\n", content) if part.strip()]
            texts.append(content)
    return texts


@pytest.fixture(scope="module")
def folder() -> str:
    return resolve_embedder(Config().embedding_model).location


@pytest.fixture(scope="module")
def reference(folder: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.model_max_length = MAX_TOKENS  # as sentence-transformers sets it
    return tokenizer


@pytest.fixture(scope="module")
def tokenizer(folder: str) -> EmbeddingTokenizer:
    return EmbeddingTokenizer.from_folder(folder, MAX_TOKENS)


def assert_same_batch(ours: EmbeddingTokenizer, reference: Any, texts: list[str]) -> None:
    expected = reference(
        texts, padding=True, truncation="longest_first", max_length=MAX_TOKENS, return_tensors="np"
    )
    batch = ours.batch(texts)
    assert set(batch) == set(INPUT_NAMES)
    for name in INPUT_NAMES:
        assert batch[name].dtype == np.int64
        np.testing.assert_array_equal(batch[name], np.asarray(expected[name]), err_msg=name)


def test_real_texts_give_the_same_ids_as_autotokenizer(
    tokenizer: EmbeddingTokenizer, reference: Any
) -> None:
    texts = real_texts()
    assert len(texts) > 300
    # Batches as the embedder forms them (similar lengths) and as they come (mixed lengths).
    by_length = sorted(texts, key=len, reverse=True)
    for start in range(0, len(texts), 64):
        assert_same_batch(tokenizer, reference, by_length[start : start + 64])
        assert_same_batch(tokenizer, reference, texts[start : start + 64])


def test_odd_texts_give_the_same_ids_as_autotokenizer(
    tokenizer: EmbeddingTokenizer, reference: Any
) -> None:
    assert_same_batch(tokenizer, reference, ODD_TEXTS)
    for text in ODD_TEXTS:
        assert_same_batch(tokenizer, reference, [text])


def test_counts_are_untruncated_and_without_special_tokens(
    tokenizer: EmbeddingTokenizer, reference: Any
) -> None:
    texts = real_texts() + ODD_TEXTS
    expected = reference(texts, add_special_tokens=False, truncation=False, verbose=False)
    assert tokenizer.count(texts) == [len(ids) for ids in expected["input_ids"]]
    assert tokenizer.count(["word " * 400]) == [400]
    assert tokenizer.count([]) == []


def test_long_texts_are_cut_to_the_limit_with_their_end_token(
    tokenizer: EmbeddingTokenizer,
) -> None:
    batch = tokenizer.batch(["word " * 400, "short"])
    assert batch["input_ids"].shape == (2, MAX_TOKENS)
    assert batch["input_ids"][0, -1] == tokenizer.batch([""])["input_ids"][0, -1]  # [SEP]
    assert batch["attention_mask"][1].sum() == 3  # [CLS] short [SEP], then padding


def test_vocabulary_only_folder_gives_the_same_ids(
    tokenizer: EmbeddingTokenizer, folder: str, tmp_path: Path
) -> None:
    # Without tokenizer.json, AutoTokenizer converts the vocabulary once; the ids stay the same.
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        shutil.copy(Path(folder) / name, tmp_path / name)
    converted = EmbeddingTokenizer.from_folder(str(tmp_path), MAX_TOKENS)
    texts = real_texts()[:64] + ODD_TEXTS
    for name in INPUT_NAMES:
        np.testing.assert_array_equal(converted.batch(texts)[name], tokenizer.batch(texts)[name])


def test_a_padding_token_outside_the_vocabulary_is_refused(folder: str) -> None:
    from tokenizers import Tokenizer

    backend = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    with pytest.raises(ValueError, match="padding token"):
        EmbeddingTokenizer(backend, MAX_TOKENS, pad_token="<nothing>")
