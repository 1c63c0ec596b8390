"""Tests for assistant.llm.loader over the bundled GGUF model: the engine measured faster is kept,
cached, and forced by ASSISTANT_ENGINE. Skipped where llama.cpp (xllamacpp) is not installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.llm.loader import cached_choice, describe, llamacpp_status, load_chat_model
from assistant.llm.torch_engine import LanguageModel

pytest.importorskip("xllamacpp")

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def config(tmp_path: Path, model_cache: Path) -> Config:
    """A models folder of its own (no engine measured yet) holding the shared dense copy."""
    models = tmp_path / "models"
    models.mkdir()
    for entry in model_cache.iterdir():
        if entry.name.endswith(("-dense", "-tokenizer", "-dense.json")):
            (models / entry.name).symlink_to(entry)
    return Config.load(environ={}, home=tmp_path, cache_dir=str(models), device="cpu")


@pytest.mark.e2e
def test_auto_measures_both_engines_once_and_keeps_the_faster(config: Config) -> None:
    from assistant.llm.llamacpp import LlamaCppModel

    assert llamacpp_status(config).llamacpp_usable
    assert cached_choice(config) is None
    assert "first question" in describe(config)
    model = load_chat_model(config)
    choice = cached_choice(config)
    assert choice is not None
    assert set(choice.seconds) >= {"torch", "llamacpp"}
    assert all(seconds > 0 for seconds in choice.seconds.values())
    assert choice.chosen == min(choice.seconds, key=lambda name: choice.seconds[name]) or (
        choice.chosen == "torch"  # kept unless another is clearly faster
    )
    expected = LanguageModel if choice.chosen == "torch" else LlamaCppModel
    assert isinstance(model, expected)
    assert describe(config).startswith(choice.chosen)
    assert model.complete(QUESTION, max_new_tokens=8)
    # The next load reads the choice instead of measuring again.
    again = load_chat_model(config)
    assert isinstance(again, expected)
    assert cached_choice(config) == choice


@pytest.mark.e2e
def test_the_engine_setting_forces_one(config: Config) -> None:
    from assistant.llm.llamacpp import LlamaCppModel

    assert isinstance(load_chat_model(config.replace(engine="torch")), LanguageModel)
    assert isinstance(load_chat_model(config.replace(engine="llamacpp")), LlamaCppModel)
    assert cached_choice(config) is None  # forcing measures nothing
    assert describe(config.replace(engine="torch")) == "torch (forced by ASSISTANT_ENGINE)"


@pytest.mark.e2e
def test_calibrate_measures_again(config: Config) -> None:
    from typer.testing import CliRunner

    from assistant.calibration import CalibrationCache, Choice
    from assistant.cli.app import app

    stale = Choice("engine", "torch", {"torch": 1.0}, "measured on a busy machine")
    CalibrationCache(config.models_dir).put("stale-key", {"engine": stale})
    environment = {
        "ASSISTANT_HOME": str(config.home),
        "ASSISTANT_CACHE_DIR": str(config.models_dir),
        "ASSISTANT_DEVICE": "cpu",
    }
    result = CliRunner().invoke(app, ["calibrate", "--json"], env=environment)
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)  # stderr may hold a library's warning
    choice = cached_choice(config)
    assert choice is not None and details["engine"] == choice.describe()
    assert "torch_prompt_products" in details  # the torch engine's plan was measured too
    assert CalibrationCache(config.models_dir).get("stale-key") is None
