from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Config
from assistant.errors import ConfigError


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
