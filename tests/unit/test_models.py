from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import ModelError
from assistant.models import (
    BUNDLED_EMBEDDER,
    BUNDLED_LANGUAGE_MODEL,
    resolve_embedder,
    resolve_language_model,
)


def test_bundled_models_resolve_to_installed_files() -> None:
    embedder = resolve_embedder(BUNDLED_EMBEDDER)
    assert Path(embedder.location).is_dir()
    language_model = resolve_language_model(BUNDLED_LANGUAGE_MODEL)
    assert language_model.gguf_file is not None
    assert (Path(language_model.location) / language_model.gguf_file).is_file()


def test_paths_and_hub_ids(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_language_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="not found"):
        resolve_language_model("./no/such/folder")
    assert resolve_language_model("HuggingFaceTB/SmolLM2-360M-Instruct").location == (
        "HuggingFaceTB/SmolLM2-360M-Instruct"
    )
    assert resolve_language_model(str(tmp_path)).location == str(tmp_path.resolve())
