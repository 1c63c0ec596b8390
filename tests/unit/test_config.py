"""Tests for assistant.config: sources and their order, checks, sections, environment reads."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
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


# The secrets, read where they are used so that no Config (nor `assistant info`) holds one.
SECRETS = {
    "ASSISTANT_OPENAI_API_KEY": "llm/openai_client.py",
    "ASSISTANT_API_KEY": "cli/serve.py",
}


def test_only_config_reads_assistant_variables_but_the_two_secrets() -> None:
    reads = re.compile(r"(?:environ|getenv)\b.*[\"'](ASSISTANT_[A-Z0-9_]*)")
    # A variable named whole in a module that reads the environment (`environ`, `getenv`, or
    # typer's `envvar=`), possibly through a constant: what such a module may read.
    environment = re.compile(r"\b(environ|getenv|envvar)\b")
    named = re.compile(r"[\"'](ASSISTANT_[A-Z0-9_]+)[\"']")
    readers: set[tuple[str, str]] = set()
    for path in PACKAGE.rglob("*.py"):
        module = str(path.relative_to(PACKAGE))
        if module == "config.py":
            continue
        text = path.read_text()
        readers.update((module, name) for name in reads.findall(text))
        if environment.search(text):
            readers.update((module, name) for name in named.findall(text))
    assert readers == {(module, name) for name, module in SECRETS.items()}
    assert not {name.removeprefix("ASSISTANT_").lower() for name in SECRETS} & {
        field.name for field in dataclasses.fields(Config)
    }


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


# config.toml in the home: under the environment and the flags, checked key by key.


def _home_with(tmp_path: Path, text: str) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(text)
    return home


def test_config_file_then_environment_then_flags(tmp_path: Path) -> None:
    home = _home_with(
        tmp_path,
        "top_k = 8\n[generation]\ntemperature = 1\nmax_new_tokens = 99\n"
        '[retrieval]\nretrieval_mode = "lexical"\nrewrite_follow_ups = false\n',
    )
    environ = {"ASSISTANT_HOME": str(home), "ASSISTANT_MAX_NEW_TOKENS": "50"}
    config = Config.load(environ=environ, retrieval_mode="dense")
    assert config.top_k == 8 and config.temperature == 1.0 and config.rewrite_follow_ups is False
    assert config.max_new_tokens == 50  # the environment over the file
    assert config.retrieval_mode == "dense"  # the flag over both
    origins = Config.origins(environ=environ, retrieval_mode="dense", top_k=None)
    assert origins["top_k"] == "config.toml" and origins["temperature"] == "config.toml"
    assert origins["max_new_tokens"] == "environment" and origins["home"] == "environment"
    assert origins["retrieval_mode"] == "flag" and origins["seed"] == "default"
    assert set(origins) == {item.name for item in config.settings()}
    # The home given as a flag is where the file is read from.
    flagged = Config.load(environ={}, home=home)
    assert flagged.top_k == 8 and flagged.config_file == home / "config.toml"
    assert Config.origins(environ={}, home=home)["home"] == "flag"


def test_no_config_file_is_all_defaults(tmp_path: Path) -> None:
    environ = {"ASSISTANT_HOME": str(tmp_path / "absent")}
    assert Config.load(environ=environ).top_k == 5
    assert set(Config.origins(environ=environ).values()) == {"default", "environment"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 'red'\n", "unknown setting 'colour'"),
        ("[retrieval]\ntop_kk = 3\n", r"unknown setting '\[retrieval\] top_kk'"),
        ("[colours]\nred = 1\n", r"unknown section \[colours\]"),
        ("[generation]\ntop_k = 3\n", r"top_k belongs under \[retrieval\], not \[generation\]"),
        ("top_k = '8'\n", "top_k must be a whole number"),
        ("top_k = 2.5\n", "top_k must be a whole number"),
        ("debug = 1\n", "debug must be true or false"),
        ("temperature = true\n", "temperature must be a number"),
        ("retrieval_mode = 'fuzzy'\n", "retrieval_mode must be dense, lexical or hybrid"),
        ("home = '/elsewhere'\n", "the home cannot be set in its own config file"),
        ("openai_api_key = 'sk-1'\n", "secrets are never read from a file"),
        ("[engine]\napi_key = 'sk-1'\n", "secrets are never read from a file"),
        ("top_k = \n", "is not valid TOML"),
    ],
)
def test_config_file_mistakes_name_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    home = _home_with(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as raised:
        Config.load(environ={"ASSISTANT_HOME": str(home)})
    assert str(home / "config.toml") in str(raised.value)


def test_config_file_serves_code_without_a_config(tmp_path: Path) -> None:
    home = _home_with(tmp_path, "debug = true\n[paths]\nprompts_dir = '~/p'\n")
    environ = {"ASSISTANT_HOME": str(home)}
    assert Config.from_environment("debug", environ) is True
    assert Config.from_environment("prompts_dir", environ) == "~/p"
    assert Config.from_environment("debug", environ | {"ASSISTANT_DEBUG": "no"}) is False
    (home / "config.toml").write_text("debug = 'maybe'\n")  # load reports it; here it is unset
    assert Config.from_environment("debug", environ) is False


def test_info_shows_where_settings_come_from(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from assistant.cli.app import app

    home = _home_with(tmp_path, "[retrieval]\ntop_k = 8\n[generation]\ntemperature = 0.5\n")
    environment = {"ASSISTANT_HOME": "", "ASSISTANT_TEMPERATURE": "0.25", "COLUMNS": "300"}
    runner = CliRunner()
    result = runner.invoke(app, ["info", "--json", "--home", str(home)], env=environment)
    assert result.exit_code == 0, result.output
    details = json.loads(result.output)
    assert details["config_file"] == str(home / "config.toml")
    settings = details["settings"]
    assert settings["top_k"] == {"value": 8, "source": "config.toml"}
    assert settings["temperature"] == {"value": 0.25, "source": "environment"}
    assert settings["home"] == {"value": str(home), "source": "flag"}
    assert settings["seed"] == {"value": 0, "source": "default"}

    result = runner.invoke(app, ["info", "--home", str(home)], env=environment)
    assert result.exit_code == 0, result.output
    assert "top_k=8 (config.toml)" in result.output
    assert "temperature=0.25 (environment)" in result.output
    assert "seed=" not in result.output  # at its default: not listed


def test_a_bad_config_file_is_one_clear_error(tmp_path: Path) -> None:
    home = _home_with(tmp_path, "[retrieval]\ntopk = 8\n")
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "docs", "--home", str(home)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {home / 'config.toml'}: unknown setting '[retrieval] topk' "
        "(`assistant info --json` lists them)"
    )
