"""Tests for assistant.llm.torch_engine: pure decoding helpers, then the real bundled model,
greedy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assistant.config import Config
from assistant.errors import ConfigError, ModelError
from assistant.llm.base import GenerationStats, IncrementalDecoder
from assistant.llm.torch_engine import LanguageModel

# Pure helpers ------------------------------------------------------------------------------


def _byte_decoder(vocabulary: dict[int, bytes]) -> Any:
    def decode(ids: list[int]) -> str:
        return b"".join(vocabulary[i] for i in ids).decode("utf-8", errors="replace")

    return decode


def test_incremental_decoder_holds_back_split_characters() -> None:
    decoder = IncrementalDecoder(_byte_decoder({0: b"Caf", 1: b"\xc3", 2: b"\xa9", 3: b" ok"}))
    assert [decoder.push(i) for i in (0, 1, 2, 3)] == ["Caf", "", "é", " ok"]
    assert decoder.flush() == ""


def test_incremental_decoder_flushes_a_dangling_byte() -> None:
    decoder = IncrementalDecoder(_byte_decoder({0: b"a", 1: b"\xe2\x82"}))
    assert decoder.push(0) == "a"
    assert decoder.push(1) == ""
    assert decoder.flush() == "\ufffd"


def test_incremental_decoder_flush_without_tokens() -> None:
    assert IncrementalDecoder(_byte_decoder({})).flush() == ""


def test_tokens_per_second_excludes_the_first_token_and_is_guarded() -> None:
    stats = GenerationStats(10, 11, ttft_s=0.5, generation_s=2.5, stopped="eos")
    assert stats.tokens_per_s == pytest.approx(5.0)
    assert GenerationStats(10, 1, 0.5, 0.5, "eos").tokens_per_s == 0.0
    assert GenerationStats(10, 5, 1.0, 1.0, "length").tokens_per_s == 0.0


# The real bundled model --------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["missing-folder/model.gguf", "./no/such/folder"])
def test_missing_model_raises_model_error(tmp_path: Path, setting: str) -> None:
    config = Config.load(environ={}, home=tmp_path, model=str(tmp_path / setting))
    with pytest.raises(ModelError):
        LanguageModel.load(config)


def test_unloadable_folder_raises_model_error(tmp_path: Path) -> None:
    folder = tmp_path / "empty-model"
    folder.mkdir()
    config = Config.load(environ={}, home=tmp_path, model=str(folder))
    with pytest.raises(ModelError, match="cannot load model"):
        LanguageModel.load(config)


def test_unknown_device_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="device"):
        LanguageModel.load(Config.load(environ={}, home=tmp_path, device="tpu"))


def test_missing_gpu_raises_model_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="CUDA"):
        LanguageModel.load(Config.load(environ={}, home=tmp_path, device="cuda"))
