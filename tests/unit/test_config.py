"""Tests for assistant.config: sources and their order, checks, sections, environment reads."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

import pytest

import assistant
from assistant.config import SECTIONS, Config, Setting
from assistant.errors import ConfigError, ModelError

PACKAGE = Path(assistant.__file__).resolve().parent
CHOICES = {
    name: get_args(kind)
    for name, kind in get_type_hints(Config).items()
    if get_origin(kind) is Literal
}


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


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_every_fixed_choice_is_checked_against_its_literal(name: str) -> None:
    variable = f"ASSISTANT_{name.upper()}"
    with pytest.raises(ConfigError, match=f"{name} \\({variable}\\) must be .*, not 'nonsense'"):
        Config.load(environ={variable: "nonsense"})
    for value in CHOICES[name]:
        assert getattr(Config.load(environ={variable: value}), name) == value


def test_settings_are_listed_by_section_with_value_and_default() -> None:
    listed = Config.load(environ={}, top_k=7).settings()
    # Every setting once, in the class's order, which groups them by section in SECTIONS order.
    assert [item.name for item in listed] == [field.name for field in dataclasses.fields(Config)]
    assert [item.section for item in listed] == sorted(
        (item.section for item in listed), key=SECTIONS.index
    )
    assert {item.section for item in listed} == set(SECTIONS)
    by_name = {item.name: item for item in listed}
    assert by_name["top_k"] == Setting("retrieval", "top_k", 7, 5)
    assert by_name["max_new_tokens"] == Setting("generation", "max_new_tokens", 256, 256)
    assert by_name["home"].section == "paths" and isinstance(by_name["home"].value, str)


def test_one_setting_from_the_environment_for_code_without_a_config() -> None:
    assert Config.from_environment("debug", {"ASSISTANT_DEBUG": "yes"}) is True
    assert Config.from_environment("debug", {}) is False
    # A bad value counts as unset here; Config.load reports it.
    assert Config.from_environment("debug", {"ASSISTANT_DEBUG": "maybe"}) is False
    assert Config.from_environment("engine", {"ASSISTANT_ENGINE": "vllm"}) == "auto"
    assert Config.from_environment("prompts_dir", {"ASSISTANT_PROMPTS_DIR": "~/p"}) == "~/p"


def test_only_config_reads_assistant_variables() -> None:
    reads = re.compile(r"(environ|getenv)\b.*[\"']ASSISTANT_")
    readers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "config.py" and reads.search(path.read_text())
    ]
    assert readers == []


def test_omp_wait_policy_is_set_once_before_torch_loads() -> None:
    setters = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"environ.*OMP_WAIT_POLICY", path.read_text())
    ]
    assert setters == ["__init__.py"]
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    imported = subprocess.run(
        [sys.executable, "-c", "import os, assistant; print(os.environ['OMP_WAIT_POLICY'])"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip() == "PASSIVE"
