from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.errors import ConfigError, ModelError


def test_environment_then_overrides() -> None:
    config = Config.load(
        environ={"ASSISTANT_HOME": "/tmp/x", "ASSISTANT_TOP_K": "7", "ASSISTANT_DEBUG": "yes"},
        top_k=None,
        max_new_tokens=12,
    )
    assert config.home == Path("/tmp/x") and config.top_k == 7 and config.debug is True
    assert config.max_new_tokens == 12
    assert Config.load(environ={"ASSISTANT_TOP_K": "7"}, top_k=3).top_k == 3


def test_bad_values_give_clear_errors() -> None:
    with pytest.raises(ConfigError, match="ASSISTANT_TOP_K"):
        Config.load(environ={"ASSISTANT_TOP_K": "many"})
    with pytest.raises(ConfigError, match="retrieval_mode"):
        Config.load(environ={}, retrieval_mode="fuzzy")
    with pytest.raises(ConfigError, match="unknown setting"):
        Config.load(environ={}, colour="red")


def test_config_is_frozen_and_replace_validates() -> None:
    config = Config.load(environ={})
    with pytest.raises(AttributeError):
        config.top_k = 3  # type: ignore[misc]
    with pytest.raises(ConfigError):
        config.replace(top_k=0)
    assert config.database.endswith("assistant.db")


def test_engine_must_be_known() -> None:
    with pytest.raises(ConfigError, match="engine"):
        Config.load(environ={}, engine="vllm")


def test_weights_and_step_threads_are_checked() -> None:
    with pytest.raises(ConfigError, match="weights"):
        Config.load(environ={}, weights="int8")
    with pytest.raises(ConfigError, match="step_threads"):
        Config.load(environ={"ASSISTANT_STEP_THREADS": "-1"})
    with pytest.raises(ConfigError, match="prompt_products"):
        Config.load(environ={"ASSISTANT_PROMPT_PRODUCTS": "fp8"})
    with pytest.raises(ConfigError, match="native_attention"):
        Config.load(environ={"ASSISTANT_NATIVE_ATTENTION": "maybe"})
    with pytest.raises(ConfigError, match="must be a whole number"):
        Config.load(environ={"ASSISTANT_TOP_K": "many"})
    with pytest.raises(ConfigError, match="min_supported_share"):
        Config.load(environ={}, min_supported_share=1.5)
    config = Config.load(environ={"ASSISTANT_WEIGHTS": "dense", "ASSISTANT_STEP_THREADS": "2"})
    assert (config.weights, config.step_threads) == ("dense", 2)
    assert Config.load(environ={}).engine == "auto"


def test_llamacpp_engine_without_its_package_says_what_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from assistant.llm.loader import load_chat_model

    real = importlib.util.find_spec
    monkeypatch.setattr(  # as if xllamacpp were not installed
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "xllamacpp" else real(name, *rest),
    )
    with pytest.raises(ModelError, match="xllamacpp"):
        load_chat_model(Config.load(environ={}, engine="llamacpp", device="cpu"))
