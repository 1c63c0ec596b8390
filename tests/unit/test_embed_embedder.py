from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from assistant.config import Config, ExportedBackend
from assistant.embed.embedder import Embedder, choose_backend, passage_text
from assistant.embed.export import exported_model_dir
from assistant.errors import ModelError
from assistant.models import resolve_embedder

SENTENCES = [
    "The cat sat on the mat.",
    "Python lists are mutable sequences; tuples are not.",
    "How do I open a file for reading?",
    "Mitochondria produce most of the cell's chemical energy.",
    "word " * 400,  # longer than the model's 256 tokens: truncated, as sentence-transformers does
]


def test_embeddings_are_normalized_float32_rows(embedder: Embedder) -> None:
    vectors = embedder.embed(SENTENCES)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(SENTENCES), embedder.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_query_embedding_is_the_single_text_embedding(embedder: Embedder) -> None:
    query = embedder.embed_query(SENTENCES[2])
    assert np.allclose(query, embedder.embed([SENTENCES[2]])[0], atol=1e-6)


def test_similar_texts_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    first, paraphrase, unrelated = embedder.embed(
        ["How do I open a file?", "Opening a file in Python", "Mitochondria make energy."]
    )
    assert first @ paraphrase > first @ unrelated + 0.2


def test_count_tokens_counts_wordpieces_without_special_tokens(embedder: Embedder) -> None:
    assert embedder.count_tokens([]) == []
    assert embedder.count_tokens(["hello world", ""]) == [2, 0]
    long_text = "word " * 400
    assert embedder.count_tokens([long_text]) == [400]  # counted, not truncated


def test_chunk_limit_leaves_room_for_special_tokens_and_heading(embedder: Embedder) -> None:
    assert embedder.max_tokens == 256
    assert 16 <= embedder.chunk_limit < embedder.max_tokens
    assert embedder.dimension == 384


def test_passage_text_puts_the_heading_first() -> None:
    assert passage_text("Guide > Install", "Run pip.") == "Guide > Install\nRun pip."
    assert passage_text("", "Run pip.") == "Run pip."


def test_backend_choice() -> None:
    assert choose_backend("openvino", "cuda") == "torch"  # GPUs run sentence-transformers
    assert choose_backend("onnx", "cpu") == "onnx"
    assert choose_backend("torch", "cpu") == "torch"
    installed = importlib.util.find_spec("openvino") is not None
    assert choose_backend("auto", "cpu") == ("openvino" if installed else "torch")


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ModelError, match="backend"):
        Embedder(Config().embedding_model, "cpu", backend="tensorflow")


@pytest.mark.parametrize("backend", get_args(ExportedBackend))
def test_missing_backend_package_falls_back_to_torch_with_one_warning(
    backend: str,
    embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for package in ("openvino", "onnxruntime"):
        monkeypatch.setitem(sys.modules, package, None)  # importing it now fails
    with caplog.at_level(logging.WARNING, logger="assistant.embed.embedder"):
        fallback = Embedder(Config().embedding_model, "cpu", backend=backend, cache_dir=tmp_path)
    assert fallback.backend == "torch"
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "\n" not in message and backend in message and "using torch" in message
    assert not any(tmp_path.iterdir())  # nothing half-exported left behind
    assert np.allclose(fallback.embed(SENTENCES[:2]), embedder.embed(SENTENCES[:2]), atol=1e-5)


def test_cache_folder_names_the_backend_and_changes_with_it(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    location = resolve_embedder(Config().embedding_model).location
    openvino_dir = exported_model_dir(location, "openvino", tmp_path)
    assert openvino_dir == exported_model_dir(location, "openvino", tmp_path)  # stable
    assert openvino_dir.parent == tmp_path and openvino_dir.name.startswith("embedder-openvino-")
    assert exported_model_dir(location, "onnx", tmp_path).name.startswith("embedder-onnx-int8-")


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedder-cache")
