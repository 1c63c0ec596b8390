"""Tests for assistant.calibration and assistant.llm.kernel_plan: choosing by measurement,
caching it, and the settings that force a choice. Tiny real layers, no language model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from assistant.calibration import CalibrationCache, Choice, best_time, fastest, key_of
from assistant.config import Config
from assistant.llm import kernel_plan
from assistant.llm.loader import MEASURE_PROMPT, TYPICAL_ANSWER, TYPICAL_PROMPT, _typical_seconds
from assistant.llm.quantize import int4_supported


def test_the_fastest_candidate_wins_only_by_a_clear_margin() -> None:
    assert fastest({"float32": 1.0, "int8": 0.5, "int4": 0.8}, "float32") == "int8"
    assert fastest({"float32": 1.0, "int8": 0.97}, "float32") == "float32"  # within the noise
    assert fastest({"float32": 1.0, "int8": math.inf}, "float32") == "float32"  # skipped
    assert fastest({"torch": 11.0, "llamacpp": 4.0, "llamacpp/1": 3.0}, "torch") == "llamacpp/1"
    with pytest.raises(ValueError, match="plain"):
        fastest({"int8": 1.0}, "float32")


def test_engine_times_are_scaled_to_a_typical_answer() -> None:
    prompt_seconds, step_seconds = 0.5, 0.02
    expected = 0.5 * TYPICAL_PROMPT / MEASURE_PROMPT + 0.02 * TYPICAL_ANSWER
    assert _typical_seconds((prompt_seconds, step_seconds)) == pytest.approx(expected)


def test_best_time_keeps_the_least_disturbed_run() -> None:
    calls: list[int] = []
    assert best_time(lambda: calls.append(1), repeats=3, warmups=2) >= 0
    assert len(calls) == 5


def test_choices_survive_the_cache_and_a_damaged_file_is_empty(tmp_path: Path) -> None:
    cache = CalibrationCache(tmp_path)
    choice = Choice("prompt_products", "float32", {"float32": 0.01, "int8": math.inf})
    cache.put("key", {"prompt_products": choice})
    assert cache.get("key") == {"prompt_products": choice}
    assert json.loads(cache.path.read_text())["key"]["prompt_products"]["seconds"]["int8"] is None
    assert cache.get("other") is None
    cache.path.write_text("{not json")
    assert cache.get("key") is None
    cache.put("key", {"prompt_products": choice})  # rewritten whole
    assert cache.get("key") == {"prompt_products": choice}
    assert "int8 skipped" in choice.describe() and "float32 10.0 ms" in choice.describe()


def test_keys_change_with_what_the_measurement_depends_on() -> None:
    assert key_of("engine", model="a") == key_of("engine", model="a")
    assert key_of("engine", model="a") != key_of("engine", model="b")
    assert key_of("engine", model="a") != key_of("torch-kernels", model="a")


def _measured(**chosen: str) -> dict[str, Choice]:
    defaults = {
        "step_products": "int4",
        "prompt_products": "int8",
        "prompt_attention": "kernel",
        "step_threads": "1",
    }
    defaults.update(chosen)
    return {name: Choice(name, value, {value: 0.001}) for name, value in defaults.items()}


def test_settings_force_a_choice_on_top_of_the_measurement() -> None:
    config = Config.load(environ={"ASSISTANT_PROMPT_PRODUCTS": "float32"})
    plan = kernel_plan._apply_settings(_measured(), config)
    assert plan.prompt_products == "float32"
    assert plan.choices["prompt_products"].reason == "forced by ASSISTANT_PROMPT_PRODUCTS"
    assert (plan.step_products, plan.prompt_attention, plan.step_threads) == ("int4", "kernel", 1)
    off = kernel_plan._apply_settings(_measured(), config.replace(native_attention="off"))
    assert off.prompt_attention == "torch"
    threads = kernel_plan._apply_settings(_measured(), Config.load(environ={}, step_threads=2))
    assert threads.step_threads == 2
    assert threads.choices["step_threads"].reason == "forced by ASSISTANT_STEP_THREADS"
    # Float32 steps keep no 4-bit layers, so the prompt cannot use their 8-bit copies.
    dense = kernel_plan._apply_settings(_measured(step_products="float32"), Config.load(environ={}))
    assert (dense.weights, dense.prompt_products) == ("dense", "float32")


def test_decoding_is_measured_per_way_and_thread_count_taking_turns() -> None:
    """Fake step times: the C step on one thread is fastest; every pair is timed twice, taking
    turns, and the best of each kept."""
    fake = {("torch", 1): 0.040, ("torch", 2): 0.050, ("kernel", 1): 0.015, ("kernel", 2): 0.020}
    calls: list[tuple[str, int]] = []

    def time_steps(way: str, threads: int) -> float:
        calls.append((way, threads))
        slower = 1.5 if len(calls) <= len(fake) else 1.0  # the first round is disturbed
        return fake[(way, threads)] * slower

    step, threads = kernel_plan.measure_decoding(time_steps, ["torch", "kernel"], [1, 2])
    assert calls == [*fake, *fake]
    assert (step.chosen, threads.chosen) == ("kernel", "1")
    assert step.seconds == {"torch": 0.040, "kernel": 0.015}
    assert threads.seconds == {"1": 0.015, "2": 0.020}
    # Within the margin of torch's steps on every core, the plain path stays.
    close = {("torch", 1): 0.049, ("torch", 2): 0.050, ("kernel", 1): 0.051, ("kernel", 2): 0.048}
    step, threads = kernel_plan.measure_decoding(
        lambda way, count: close[(way, count)], ["torch", "kernel"], [1, 2]
    )
    assert (step.chosen, threads.chosen) == ("torch", "2")
    # One way (the kernel forced, or not available): only the thread count is chosen.
    step, threads = kernel_plan.measure_decoding(
        lambda way, count: fake[(way, count)], ["kernel"], [1, 2]
    )
    assert (step.chosen, threads.chosen) == ("kernel", "1")


def test_the_step_kernel_setting_forces_the_decoding_step() -> None:
    measured = _measured()  # a calibration from before the step kernel: no such choice
    plan = kernel_plan._apply_settings(measured, Config.load(environ={}))
    assert plan.decode_step == "torch" and plan.choices["decode_step"].reason == "not measured"
    forced = kernel_plan._apply_settings(
        {**measured, "decode_step": Choice("decode_step", "torch", {"torch": 0.04})},
        Config.load(environ={"ASSISTANT_NATIVE_STEP": "on"}),
    )
    assert forced.decode_step == "kernel"
    assert forced.choices["decode_step"].reason == "forced by ASSISTANT_NATIVE_STEP"
    assert kernel_plan.dense_plan("why", 2).decode_step == "torch"


class TinyModel(nn.Module):
    """Two decoder-like layers of real linears, with the config fields `plan` reads."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList(
            nn.ModuleDict({"up": nn.Linear(64, 128), "down": nn.Linear(128, 64)}) for _ in range(2)
        )
        self.config = SimpleNamespace(
            model_type="tiny", hidden_size=64, num_attention_heads=2, num_key_value_heads=1
        )


@pytest.mark.skipif(not int4_supported(), reason="this torch has no int4 CPU kernels")
def test_a_plan_is_measured_once_then_read_from_the_cache(tmp_path: Path) -> None:
    config = Config.load(environ={}, home=tmp_path, native_attention="off")
    cache = CalibrationCache(tmp_path)
    first = kernel_plan.plan(TinyModel(), config, four_bit=True, cache=cache)
    assert first.step_products in ("int4", "float32")
    assert first.prompt_products in ("int8", "int4", "float32")
    seconds = first.choices["prompt_products"].seconds
    assert seconds["float32"] > 0 and set(seconds) >= {"float32", "int4"}
    assert first.choices["step_products"].reason == "measured"
    entries = json.loads(cache.path.read_text())
    assert len(entries) == 1
    # A second load reads the choices: measuring again would give other timings.
    again = kernel_plan.plan(TinyModel(), config, four_bit=True, cache=cache)
    assert again.choices == first.choices


def test_models_that_are_not_4_bit_get_the_plain_path(tmp_path: Path) -> None:
    config = Config.load(environ={}, home=tmp_path)
    plan = kernel_plan.plan(TinyModel(), config, four_bit=False)
    assert (plan.weights, plan.prompt_products, plan.prompt_attention) == (
        "dense",
        "float32",
        "torch",
    )
    forced = kernel_plan.plan(TinyModel(), config.replace(weights="dense"), four_bit=True)
    assert forced.choices["step_products"].reason == "forced by ASSISTANT_WEIGHTS=dense"
