"""The embedder's backends against the sentence-transformers reference, on real weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Config
from assistant.embed.embedder import Embedder, choose_backend
from assistant.embed.export import exported_model_dir
from assistant.models import resolve_embedder
from tests.unit.test_embed_embedder import SENTENCES

DEFAULT_BACKEND = choose_backend(Config().embedding_backend, "cpu")  # what a default home runs


@pytest.fixture(scope="session")
def default_embedder(export_cache: Path) -> Embedder:
    """The embedder a default home uses, exported (once) into the session's cache."""
    config = Config.load(environ={})
    return Embedder(
        config.embedding_model,
        "cpu",
        config.embed_batch_size,
        backend=config.embedding_backend,
        cache_dir=export_cache,
    )


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedder-cache")


@pytest.mark.e2e
def test_default_backend_agrees_with_torch_float32(
    default_embedder: Embedder, embedder: Embedder
) -> None:
    assert default_embedder.backend == DEFAULT_BACKEND  # it ran, no fallback
    exported, reference = default_embedder.embed(SENTENCES), embedder.embed(SENTENCES)
    assert exported.dtype == np.float32
    assert np.allclose(np.linalg.norm(exported, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(exported * reference, axis=1)) >= 0.99
    assert default_embedder.count_tokens(SENTENCES) == embedder.count_tokens(SENTENCES)
    assert default_embedder.max_tokens == embedder.max_tokens
    assert default_embedder.dimension == embedder.dimension


@pytest.mark.e2e
def test_small_batches_give_the_same_rows_in_the_same_order(
    default_embedder: Embedder, export_cache: Path
) -> None:
    small = Embedder(
        Config().embedding_model, "cpu", 2, backend=DEFAULT_BACKEND, cache_dir=export_cache
    )
    texts = [*SENTENCES, "short", "a somewhat longer text than short"]
    # bfloat16 rounding depends a little on the padded length; a row in the wrong place or
    # another text's row would be far below this.
    cosines = np.sum(small.embed(texts) * default_embedder.embed(texts), axis=1)
    assert np.min(cosines) >= 0.9999


@pytest.mark.e2e
@pytest.mark.skipif(DEFAULT_BACKEND == "torch", reason="the torch backend exports nothing")
def test_second_construction_reuses_the_export(
    default_embedder: Embedder, export_cache: Path
) -> None:
    location = resolve_embedder(Config().embedding_model).location
    folder = exported_model_dir(location, DEFAULT_BACKEND, export_cache)
    before = {path.name: path.stat().st_ino for path in folder.iterdir()}
    again = Embedder(
        Config().embedding_model, "cpu", backend=DEFAULT_BACKEND, cache_dir=export_cache
    )
    assert again.backend == DEFAULT_BACKEND
    assert {path.name: path.stat().st_ino for path in folder.iterdir()} == before
    assert [path.name for path in export_cache.iterdir()] == [folder.name]  # no temporaries
    assert np.allclose(again.embed(SENTENCES), default_embedder.embed(SENTENCES), atol=1e-6)


@pytest.mark.e2e
@pytest.mark.skipif(DEFAULT_BACKEND == "torch", reason="the torch backend exports nothing")
def test_a_broken_export_is_rebuilt(
    default_embedder: Embedder, export_cache: Path, tmp_path: Path
) -> None:
    model = Config().embedding_model
    location = resolve_embedder(model).location
    folder = exported_model_dir(location, DEFAULT_BACKEND, tmp_path)
    # A copy: the runtimes map the weights file, so the live one must not be truncated.
    shutil.copytree(exported_model_dir(location, DEFAULT_BACKEND, export_cache), folder)
    weights = max(folder.iterdir(), key=lambda path: path.stat().st_size)
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated copy, as after a full disk
    rebuilt = Embedder(model, "cpu", backend=DEFAULT_BACKEND, cache_dir=tmp_path)
    assert rebuilt.backend == DEFAULT_BACKEND
    assert weights.stat().st_size > 1000
    expected = default_embedder.embed(SENTENCES)
    assert np.allclose(rebuilt.embed(SENTENCES), expected, atol=1e-6)


@pytest.mark.e2e
@pytest.mark.skipif(DEFAULT_BACKEND != "openvino", reason="only OpenVINO compiles the export")
def test_openvino_keeps_its_compiled_model_and_recompiles_a_damaged_one(
    default_embedder: Embedder, export_cache: Path, tmp_path: Path
) -> None:
    model = Config().embedding_model
    location = resolve_embedder(model).location
    folder = exported_model_dir(location, "openvino", tmp_path)
    shutil.copytree(exported_model_dir(location, "openvino", export_cache), folder)
    shutil.rmtree(folder / "compiled")  # compiled for the other folder's path: not used here
    first = Embedder(model, "cpu", backend="openvino", cache_dir=tmp_path)
    (compiled,) = (folder / "compiled").glob("*/*.blob")  # one folder per CPU, one model
    expected = default_embedder.embed(SENTENCES)
    assert np.allclose(first.embed(SENTENCES), expected, atol=1e-6)
    # The first embedder compiled the model and wrote the file; it does not read it.
    compiled.chmod(0o600)
    compiled.write_bytes(b"a truncated compiled model")
    again = Embedder(model, "cpu", backend="openvino", cache_dir=tmp_path)
    assert again.backend == "openvino"
    assert np.allclose(again.embed(SENTENCES), expected, atol=1e-6)
    assert compiled.stat().st_size > 1000  # compiled and written again
