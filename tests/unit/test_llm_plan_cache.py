"""Tests for assistant.llm.plan_cache: `assistant info` shows the engine and the torch engine's
measured choices from the calibration cache without importing torch or transformers, and reads
them under the key, and with the forcing settings, that `kernel_plan` uses."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from assistant.calibration import CalibrationCache, Choice
from assistant.config import Config
from assistant.llm import plan_cache
from assistant.llm.loader import engine_key
from assistant.llm.weights import dense_cache_dir
from assistant.models import resolve_language_model

# The bundled model's shapes, as its dense copy's config.json holds them.
SMOLLM2 = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
}
MEASURED = {
    "prompt_products": Choice(
        "prompt_products", "int8", {"float32": 0.0116, "int4": 0.0072, "int8": 0.0056}
    ),
    "step_products": Choice("step_products", "int4", {"float32": 0.0074, "int4": 0.0018}),
    "prompt_attention": Choice("prompt_attention", "torch", {"torch": 0.002, "kernel": math.inf}),
    "step_threads": Choice("step_threads", "1", {"1": 0.0139, "2": 0.0314}),
}


def _calibrated_home(home: Path, *, four_bit: bool = True) -> Config:
    """A home whose models folder holds what the first question leaves there: the dense copy's
    config.json, the note that the GGUF file is 4-bit, and the measured choices."""
    config = Config.load(environ={}, home=home)
    dense = dense_cache_dir(resolve_language_model(config.model), config.models_dir)
    dense.mkdir(parents=True)
    (dense / "config.json").write_text(json.dumps(SMOLLM2))
    dense.with_name(f"{dense.name}.json").write_text(json.dumps({"four_bit": four_bit}))
    cache = CalibrationCache(config.models_dir)
    cache.put(plan_cache.shapes_key(SMOLLM2), MEASURED)
    engine = Choice("engine", "llamacpp/1", {"torch": 2.2, "llamacpp/1": 1.5}, "measured")
    cache.put(engine_key(config), {"engine": engine})
    return config


def test_info_shows_the_cached_choices_without_importing_torch(tmp_path: Path) -> None:
    _calibrated_home(tmp_path / "home")
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("ASSISTANT_")
    }
    environment |= {
        "ASSISTANT_HOME": str(tmp_path / "home"),
        "PATH": str(tmp_path / "empty"),  # no C compiler: the attention kernel is not built
    }
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "assistant", "info", "--json"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "assistant.llm.plan_cache" in imported  # the report below came from it
    assert not {"torch", "transformers"} & imported
    details = json.loads(result.stdout)
    if importlib.util.find_spec("xllamacpp") is not None:
        assert details["engine"] == "llamacpp/1 (measured: torch 2200.0 ms, llamacpp/1 1500.0 ms)"
    else:
        assert details["engine"] == "torch (llama.cpp: the xllamacpp package is not installed)"
    assert details["torch_prompt_products"] == (
        "int8 (measured: float32 11.6 ms, int4 7.2 ms, int8 5.6 ms)"
    )
    assert details["torch_step_products"].startswith("int4 (measured")
    assert details["torch_prompt_attention"] == "torch (measured: torch 2.0 ms, kernel skipped)"
    assert details["torch_step_threads"].startswith("1 (measured: 1 13.9 ms")
    assert details["attention_kernel"] == "unavailable: no C compiler found (cc, gcc, clang or $CC)"


def test_settings_and_plain_models_change_what_is_shown(tmp_path: Path) -> None:
    config = _calibrated_home(tmp_path / "home")
    forced = plan_cache.cached_choices(config.replace(prompt_products="float32", step_threads=2))
    assert forced is not None
    assert forced["prompt_products"].describe().startswith("float32 (forced by ASSISTANT_PROMPT")
    assert forced["step_threads"].chosen == "2"
    assert forced["step_products"] == MEASURED["step_products"]
    dense = plan_cache.cached_choices(config.replace(weights="dense"))
    assert dense is not None and dense["step_products"].chosen == "float32"
    assert dense["step_products"].reason == "forced by ASSISTANT_WEIGHTS=dense"
    # Nothing measured yet: `info` says it is measured at the first question.
    CalibrationCache(config.models_dir).clear()
    assert plan_cache.cached_choices(config) is None

    plain = _calibrated_home(tmp_path / "plain", four_bit=False)
    choices = plan_cache.cached_choices(plain)
    assert choices is not None and choices["step_products"].chosen == "float32"
    assert choices["prompt_attention"].reason == "float32 weights: the model is not a 4-bit file"


def test_the_key_and_the_settings_are_kernel_plans(tmp_path: Path) -> None:
    """The cache is written by `kernel_plan` off transformers' config of the loaded model: the
    same key from config.json (also one leaving out what the config class fills in), and the
    same forcing settings."""
    from transformers import AutoConfig

    from assistant.llm import kernel_plan

    sparse = {key: value for key, value in SMOLLM2.items() if key not in ("head_dim",)}
    sparse["num_key_value_heads"] = None
    for number, written in enumerate((SMOLLM2, sparse)):
        folder = tmp_path / str(number)
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(written))
        loaded = SimpleNamespace(config=AutoConfig.from_pretrained(folder))
        keys = [plan_cache.shapes_key(reading) for reading in plan_cache._shape_readings(written)]
        assert kernel_plan._key(loaded) in keys

    configs = [
        Config.load(environ={}),
        Config.load(environ={}, prompt_products="int4", native_attention="on"),
        Config.load(environ={}, step_products="int4_native", step_threads=3),
        Config.load(environ={}, weights="int4", native_attention="off"),
    ]
    measured = dict(MEASURED, step_products=Choice("step_products", "float32", {"float32": 1.0}))
    for config in configs:
        for choices in (MEASURED, measured):
            expected = kernel_plan._apply_settings(dict(choices), config).choices
            assert plan_cache.with_settings(choices, config) == expected
    threads = 2
    assert (
        plan_cache.plain_choices("why", threads) == kernel_plan.dense_plan("why", threads).choices
    )


def test_a_model_whose_files_are_missing_has_no_cached_choices(tmp_path: Path) -> None:
    config = Config.load(environ={}, home=tmp_path / "home")
    assert plan_cache.cached_choices(config) is None  # no dense copy yet
    assert plan_cache.cached_choices(config.replace(model=str(tmp_path / "missing.gguf"))) is None
