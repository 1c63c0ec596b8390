"""Tests for assistant.llm.llamacpp over the bundled GGUF model; skipped without xllamacpp
installed."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.errors import InputError
from assistant.llm.llamacpp import LlamaCppModel
from assistant.llm.loader import llamacpp_status
from assistant.llm.torch_engine import LanguageModel

pytest.importorskip("xllamacpp")

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Config:
    home = tmp_path_factory.mktemp("home")
    return Config.load(environ={}, home=home, cache_dir=str(model_cache), device="cpu")


@pytest.fixture(scope="module")
def model(config: Config) -> LlamaCppModel:
    return LlamaCppModel.load(config)


def test_usable_only_on_the_cpu(config: Config) -> None:
    assert llamacpp_status(config).llamacpp_usable
    status = llamacpp_status(config.replace(device="cuda"))
    assert not status.llamacpp_usable and "CPU" in status.reason


def test_its_http_port_refuses_requests_without_the_key(model: LlamaCppModel) -> None:
    """xllamacpp listens on 127.0.0.1 even in-process: another local user must not use it."""
    address = str(model._server.listening_address)  # 127.0.0.1, an ephemeral port
    assert address.startswith("http://127.0.0.1:")
    for headers in ({}, {"Authorization": "Bearer not-the-key"}):
        request = urllib.request.Request(f"{address}/v1/models", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    # The same request with the process's own key is served: the 401s came from the key check.
    request = urllib.request.Request(
        f"{address}/v1/models", headers={"Authorization": f"Bearer {model._api_key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_prompts_are_the_tokens_our_engine_sees(config: Config, model: LlamaCppModel) -> None:
    ours = LanguageModel.load(config)
    assert model.count_message_tokens(QUESTION) == ours.count_message_tokens(QUESTION)
    assert model.count_tokens("Paris, France") == ours.count_tokens("Paris, France")


def test_greedy_answers_do_not_depend_on_the_previous_request(model: LlamaCppModel) -> None:
    # The quantized weights are used as they are, so the text may differ from our engine's
    # (it does for QUESTION); it must not differ from one request to the next.
    first = model.complete(QUESTION, max_new_tokens=12)
    model.complete(STORY, max_new_tokens=4)
    assert first
    assert model.complete(QUESTION, max_new_tokens=12) == first


def test_max_new_tokens_is_honored(model: LlamaCppModel) -> None:
    model.complete(STORY, max_new_tokens=5)
    assert model.last_stats is not None
    assert model.last_stats.new_tokens == 5
    assert model.last_stats.stopped == "length"


def test_closing_the_stream_cancels_decoding(model: LlamaCppModel) -> None:
    stream = model.stream(STORY, max_new_tokens=400)
    pieces = [next(stream) for _ in range(3)]
    stream.close()
    assert all(pieces)
    assert model.last_stats is not None
    assert model.last_stats.stopped == "cancelled"
    assert model.last_stats.new_tokens < 400
    # One server slot: had the story gone on, this request would queue behind it.
    assert model.complete(QUESTION, max_new_tokens=1)
    assert model.last_stats.stopped == "length"


def test_a_prompt_that_does_not_fit_is_refused(model: LlamaCppModel) -> None:
    with pytest.raises(InputError, match="only"):
        model.stream(QUESTION, max_new_tokens=model.context_length)
    with pytest.raises(InputError, match="no messages"):
        model.stream([])
