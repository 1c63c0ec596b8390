"""The OpenAI-compatible engine against a real llama.cpp server on loopback serving the bundled
GGUF (xllamacpp's, which our llama.cpp engine starts, guarded by its random key), and the command
line over it; skipped without xllamacpp installed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.errors import ModelError
from assistant.llm.llamacpp import LlamaCppModel
from assistant.llm.openai_engine import OpenAIModel
from assistant.llm.token_counting import EstimatedCounter
from tests.conftest import SAMPLE_CORPUS

pytest.importorskip("xllamacpp")

QUESTIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "Answer from the passage."},
        {
            "role": "user",
            "content": "Passage: The KV cache stores keys and values.\n\nWhat does "
            "the KV cache store?",
        },
    ],
]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Config:
    home = tmp_path_factory.mktemp("home")
    return Config.load(environ={}, home=home, cache_dir=str(model_cache), device="cpu")


@pytest.fixture(scope="module")
def server(config: Config) -> Iterator[tuple[LlamaCppModel, str]]:
    """llama.cpp on the bundled GGUF (4,096-token context), and its OpenAI base URL."""
    model = LlamaCppModel.load(config)
    yield model, model.openai_endpoint()[0]
    model.close()


def remote(config: Config, base_url: str, key: str, **changes: object) -> OpenAIModel:
    values: dict[str, object] = {"model": "openai:smollm2", "openai_base_url": base_url}
    return OpenAIModel.load(config.replace(**(values | changes)), api_key=key)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_greedy_answers_are_the_in_process_engines(
    config: Config, server: tuple[LlamaCppModel, str]
) -> None:
    """The same server, reached over HTTP instead of in-process: the same sampling settings
    give the same greedy text and token count."""
    local, url = server
    model = remote(config, url, local.openai_endpoint()[1])
    for messages in QUESTIONS:
        expected = local.complete(messages, max_new_tokens=40)
        assert "".join(model.stream(messages, max_new_tokens=40)) == expected
        assert model.last_stats is not None and local.last_stats is not None
        assert model.last_stats.new_tokens == local.last_stats.new_tokens
        assert model.last_stats.stopped == local.last_stats.stopped
        assert model.last_stats.prompt_tokens == local.last_stats.prompt_tokens


def test_the_context_window_is_read_from_the_server(
    config: Config, server: tuple[LlamaCppModel, str]
) -> None:
    local, url = server
    assert remote(config, url, local.openai_endpoint()[1], context_cap=16384).context_length == 4096
    assert remote(config, url, local.openai_endpoint()[1], context_cap=2048).context_length == 2048


def test_counts_are_exact_with_the_tokenizer_and_high_without(
    config: Config, server: tuple[LlamaCppModel, str]
) -> None:
    local, url = server
    exact = remote(
        config, url, local.openai_endpoint()[1], tokenizer="bundled:SmolLM2-135M-Instruct"
    )
    estimated = remote(config, url, local.openai_endpoint()[1])
    passage = (SAMPLE_CORPUS / "kv-cache.md").read_text()
    messages = [
        {"role": "system", "content": "Answer from the passages."},
        {"role": "user", "content": f"{passage}\n\nWhat does the KV cache store?"},
    ]
    exact.complete(messages, max_new_tokens=2)
    assert exact.last_stats is not None
    served = exact.last_stats.prompt_tokens  # the server's own count
    # transformers' tokenizer and llama.cpp's may split a rare run of characters differently.
    assert abs(exact.count_message_tokens(messages) - served) <= 2
    assert served < estimated.count_message_tokens(messages) < 1.6 * served


HARD_TEXTS = [
    "0x3f2a 1234567890 98765 3.14159",
    "def f(x):\n    return {'a': [1, 2]}\n",
    "| 12.5 | 13.75 | 1,024 |\n|---|---|---|",
    "https://example.com/a/b?c=d&e=f",
    "Les élèves étudient à l'école.",
    "Привет, как дела?",
    "机器学习是人工智能的一个分支。",
]


def test_the_estimate_is_high_on_every_sample_document_and_hard_text(
    config: Config, server: tuple[LlamaCppModel, str]
) -> None:
    local, _ = server
    estimate = EstimatedCounter()
    documents = [path for path in sorted(SAMPLE_CORPUS.iterdir()) if path.suffix != ".pdf"]
    for text in [path.read_text(errors="replace") for path in documents] + HARD_TEXTS:
        assert estimate.count(text) >= local.count_tokens(text), text[:40]


def test_a_wrong_key_is_refused_with_a_clear_message(
    config: Config, server: tuple[LlamaCppModel, str]
) -> None:
    _, url = server
    with pytest.raises(ModelError) as failure:
        remote(config, url, "not-the-key")
    assert str(failure.value) == (
        f"the model server at {url} refused the API key (401): set ASSISTANT_OPENAI_API_KEY to "
        "the server's key"
    )


def test_nothing_listening_is_a_clear_error(config: Config) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelError) as failure:
        remote(config, url, "", openai_retries=1, openai_retry_seconds=0.01)
    assert str(failure.value) == (
        f"cannot reach the model server at {url}: connection refused, nothing listens there "
        "(2 attempts); start the server or set ASSISTANT_OPENAI_BASE_URL to where it listens"
    )


def cli_environment(sample_environment: dict[str, str], base_url: str, key: str) -> dict[str, str]:
    return {
        **sample_environment,
        "ASSISTANT_OPENAI_BASE_URL": base_url,
        "ASSISTANT_OPENAI_API_KEY": key,
        "ASSISTANT_OPENAI_RETRIES": "1",
        "ASSISTANT_OPENAI_RETRY_SECONDS": "0.05",
    }


def test_ask_answers_with_checked_citations_through_the_server(
    sample_environment: dict[str, str], server: tuple[LlamaCppModel, str]
) -> None:
    local, url = server
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", "--json", "--model", "openai:whatever",
         "What does the KV cache store?"],
        env=cli_environment(sample_environment, url, local.openai_endpoint()[1]),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert local.openai_endpoint()[1] not in result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["model"] == "openai:whatever"
    assert answer["abstained"] is False, answer
    assert answer["raw_answer"]  # the server's text, checked
    texts = " ".join(citation["text"].lower() for citation in answer["citations"])
    assert answer["citations"] and "key" in texts and "value" in texts


def test_ask_with_the_server_down_prints_one_clear_line(
    sample_environment: dict[str, str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", "--model", "openai:whatever",
         "What does the KV cache store?"],
        env=cli_environment(sample_environment, url, "sk-secret-1234"),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "sk-secret-1234" not in result.stderr
    assert f"cannot reach the model server at {url}" in " ".join(result.stderr.split())
