"""The OpenAI-compatible engine against a small real HTTP server on loopback
(`tests/fake_openai_server.py`): streaming, the context window, and every failure a user can act
on. The real llama.cpp server is in tests/e2e/test_llm_openai_engine.py."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.errors import ConfigError, InputError, ModelError
from assistant.llm import loader
from assistant.llm.openai_client import display_url
from assistant.llm.openai_engine import OpenAIModel
from assistant.models import resolve_language_model, served_model_name
from tests.fake_openai_server import Script, fake_server

QUESTION = [{"role": "user", "content": "What does the KV cache store?"}]
KEY = "sk-test-7f3a9c2e"


def settings(tmp_path: Path, base_url: str, **changes: object) -> Config:
    values: dict[str, object] = {
        "home": tmp_path / "home",
        "model": "openai:fake",
        "openai_base_url": base_url,
        "openai_retries": 2,
        "openai_retry_seconds": 0.01,
        "openai_timeout": 5.0,
    }
    return Config.load(environ={}, **(values | changes))


def free_port() -> int:
    """A loopback port nothing listens on (bound and released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_streams_the_pieces_and_reads_the_servers_counts(tmp_path: Path) -> None:
    with fake_server(Script(prompt_tokens=21)) as (url, _):
        model = OpenAIModel.load(settings(tmp_path, url), api_key="")
        assert list(model.stream(QUESTION, max_new_tokens=8)) == ["Hello", " world", "."]
    stats = model.last_stats
    assert stats is not None
    assert (stats.stopped, stats.prompt_tokens, stats.new_tokens) == ("eos", 21, 3)
    assert model.interruption is None
    assert 0 < stats.ttft_s <= stats.generation_s


def test_the_request_carries_the_settings_and_the_key(tmp_path: Path) -> None:
    config = settings(
        tmp_path, "", temperature=0.0, seed=7, repetition_penalty=1.2, top_k_sampling=9
    )
    with fake_server(Script(key=KEY)) as (url, recorded):
        model = OpenAIModel.load(config.replace(openai_base_url=url), api_key=KEY)
        model.complete(QUESTION, max_new_tokens=12)
    [(headers, body)] = recorded.chat_requests()
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "fake" and body["messages"] == QUESTION and body["stream"] is True
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (12, 0.0, 7)
    assert body["stream_options"] == {"include_usage": True}
    # The local engines' sampling, in the names llama.cpp and vLLM read.
    assert (body["top_k"], body["repeat_penalty"], body["repetition_penalty"]) == (9, 1.2, 1.2)


def test_a_server_refusing_the_extra_fields_is_asked_again_without(tmp_path: Path) -> None:
    with fake_server(Script(refuse_extensions=True)) as (url, recorded):
        model = OpenAIModel.load(settings(tmp_path, url), api_key="")
        assert model.complete(QUESTION) == "Hello world."
        assert model.complete(QUESTION) == "Hello world."
    bodies = [body for _, body in recorded.chat_requests()]
    assert ["top_k" in body for body in bodies] == [True, False, False]  # asked once, then not


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (Script(props_context=2048), 2048),  # llama.cpp's /props
        (Script(models_context=1024), 1024),  # vLLM's max_model_len
        (Script(props_context=8192), 4096),  # never above context_cap
        (Script(), 4096),  # the server says nothing: context_cap
    ],
)
def test_the_context_window_is_the_servers_within_the_cap(
    tmp_path: Path, script: Script, expected: int
) -> None:
    with fake_server(script) as (url, _):
        model = OpenAIModel.load(settings(tmp_path, url, context_cap=4096), api_key="")
    assert model.context_length == expected


def test_a_prompt_that_cannot_fit_is_refused_before_any_request(tmp_path: Path) -> None:
    long_question = [{"role": "user", "content": "word " * 2000}]
    with fake_server(Script(props_context=1024)) as (url, recorded):
        model = OpenAIModel.load(settings(tmp_path, url), api_key="")
        with pytest.raises(InputError, match=r"only \d+ fit: the server's context is 1024"):
            model.stream(long_question, max_new_tokens=100)
        # Just fitting: the prompt's count plus the answer's tokens equal the window.
        room = 1024 - model.count_message_tokens(QUESTION)
        assert model.complete(QUESTION, max_new_tokens=room)
        with pytest.raises(InputError):
            model.stream(QUESTION, max_new_tokens=room + 1)
    assert len(recorded.chat_requests()) == 1


def test_a_server_counting_more_prompt_tokens_raises_later_counts(tmp_path: Path) -> None:
    with fake_server(Script(prompt_tokens=500)) as (url, _):
        model = OpenAIModel.load(settings(tmp_path, url), api_key="")
        before = model.count_message_tokens(QUESTION)
        model.complete(QUESTION)
        assert model.count_message_tokens(QUESTION) == 500
        assert before < 500


def test_a_stream_cut_halfway_keeps_the_partial_answer_marked_incomplete(tmp_path: Path) -> None:
    with fake_server(Script(mode="cut", cut_after=2)) as (url, recorded):
        model = OpenAIModel.load(settings(tmp_path, url), api_key="")
        assert list(model.stream(QUESTION)) == ["Hello", " world"]
        assert len(recorded.chat_requests()) == 1  # not asked again once the answer started
    assert model.last_stats is not None and model.last_stats.stopped == "incomplete"
    assert model.interruption is not None and "broke off" in model.interruption


def test_a_stream_cut_before_any_text_is_an_error(tmp_path: Path) -> None:
    with fake_server(Script(mode="cut", cut_after=0)) as (url, _):
        model = OpenAIModel.load(settings(tmp_path, url), api_key="")
        with pytest.raises(ModelError, match="broke off the answer before any text"):
            model.complete(QUESTION)


def test_closing_the_stream_marks_the_answer_cancelled(tmp_path: Path) -> None:
    with fake_server() as (url, _):
        model = OpenAIModel.load(settings(tmp_path, url), api_key="")
        stream = model.stream(QUESTION)
        assert next(stream) == "Hello"
        stream.close()
    assert model.last_stats is not None and model.last_stats.stopped == "cancelled"


def test_length_is_reported_when_the_token_limit_ends_the_answer(tmp_path: Path) -> None:
    with fake_server(Script(finish="length")) as (url, _):
        model = OpenAIModel.load(settings(tmp_path, url), api_key="")
        model.complete(QUESTION, max_new_tokens=3)
    assert model.last_stats is not None and model.last_stats.stopped == "length"


def test_nothing_listening_is_a_clear_error_after_a_few_quick_tries(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(ModelError) as failure:
        OpenAIModel.load(settings(tmp_path, url, openai_retries=2), api_key="")
    assert time.perf_counter() - started < 5
    assert str(failure.value) == (
        f"cannot reach the model server at {url}: connection refused, nothing listens there "
        "(3 attempts); start the server or set ASSISTANT_OPENAI_BASE_URL to where it listens"
    )


def test_a_server_gone_after_loading_is_a_clear_error(tmp_path: Path) -> None:
    with fake_server() as (url, _):
        model = OpenAIModel.load(settings(tmp_path, url, openai_retries=1), api_key="")
    with pytest.raises(ModelError, match=r"cannot reach .*: connection refused.*\(2 attempts\)"):
        model.complete(QUESTION)


def test_dropped_connections_are_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    with fake_server(Script(mode="drop")) as (url, recorded):
        with pytest.raises(ModelError, match=r"cannot reach .*\(3 attempts\)"):
            OpenAIModel.load(settings(tmp_path, url, openai_retries=2), api_key="")
        assert len(recorded.requests) == 3


def test_a_timeout_is_reported_and_not_retried(tmp_path: Path) -> None:
    with fake_server(Script(mode="hang", hang_seconds=2)) as (url, recorded):
        with pytest.raises(ModelError, match=r"did not answer within 0\.3 s.*OPENAI_TIMEOUT"):
            OpenAIModel.load(settings(tmp_path, url, openai_timeout=0.3), api_key="")
        assert len(recorded.requests) == 1


def test_a_wrong_key_says_which_setting_to_fix_without_showing_either_key(tmp_path: Path) -> None:
    with fake_server(Script(key=KEY)) as (url, _):
        with pytest.raises(ModelError) as wrong:
            OpenAIModel.load(settings(tmp_path, url), api_key="sk-wrong-0000")
        with pytest.raises(ModelError) as missing:
            OpenAIModel.load(settings(tmp_path, url), api_key="")
    assert str(wrong.value) == (
        f"the model server at {url} refused the API key (401): set ASSISTANT_OPENAI_API_KEY to "
        "the server's key"
    )
    assert "wants an API key (401)" in str(missing.value)
    for text in (str(wrong.value), str(missing.value)):
        assert KEY not in text and "sk-wrong" not in text


def test_an_unknown_model_names_the_ones_the_server_has(tmp_path: Path) -> None:
    script = Script(models=("llama3.1:8b", "qwen2.5:7b"), strict_models=True)
    with fake_server(script) as (url, _):
        model = OpenAIModel.load(settings(tmp_path, url, model="openai:llama3"), api_key="")
        with pytest.raises(ModelError) as failure:
            model.complete(QUESTION)
    assert str(failure.value) == (
        f"the model server at {url} has no model 'llama3' (404); it serves: llama3.1:8b, "
        "qwen2.5:7b (use --model openai:NAME)"
    )


def test_a_base_url_without_the_api_says_so(tmp_path: Path) -> None:
    with fake_server() as (url, _):
        wrong = url.removesuffix("/v1") + "/api"
        model = OpenAIModel.load(settings(tmp_path, wrong), api_key="")
        with pytest.raises(ModelError, match=r"has no OpenAI-compatible API \(404\).*ends in /v1"):
            model.complete(QUESTION)


def test_the_key_is_never_a_setting_nor_shown(tmp_path: Path) -> None:
    environ = {"ASSISTANT_OPENAI_API_KEY": KEY, "ASSISTANT_MODEL": "openai:fake"}
    config = Config.load(environ=environ, home=tmp_path / "home")
    assert KEY not in repr(config) and KEY not in str(config.as_dict())
    with fake_server(Script(key=KEY)) as (url, _):
        model = OpenAIModel.load(config.replace(openai_base_url=url), api_key=KEY)
        assert KEY not in model.describe() and KEY not in loader.describe(config)


def test_a_password_in_the_base_url_is_masked() -> None:
    assert display_url("https://me:hunter2@example.org:8443/v1?key=abc") == (
        "https://me:***@example.org:8443/v1"
    )


def test_settings_it_cannot_use_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must start with http"):
        OpenAIModel.load(settings(tmp_path, "127.0.0.1:8080/v1"), api_key="")
    with pytest.raises(ModelError, match="names no model"):
        OpenAIModel.load(settings(tmp_path, "http://127.0.0.1:1/v1", model="openai:"), api_key="")


def test_openai_models_are_recognised_and_never_loaded_here(tmp_path: Path) -> None:
    assert served_model_name("openai:llama3.1:8b") == "llama3.1:8b"
    assert served_model_name("bundled:SmolLM2-135M-Instruct") is None
    with pytest.raises(ModelError, match="OpenAI-compatible server"):
        resolve_language_model("openai:org/model")
    config = settings(tmp_path, "http://127.0.0.1:8080/v1", model="openai:llama3")
    assert not loader.llamacpp_status(config).llamacpp_usable
    assert loader.describe(config) == (
        "openai (an OpenAI-compatible server at http://127.0.0.1:8080/v1, model 'llama3')"
    )


def test_the_loader_picks_the_remote_engine_without_measuring(tmp_path: Path) -> None:
    with fake_server() as (url, _):
        model = loader.load_chat_model(settings(tmp_path, url))
        assert isinstance(model, OpenAIModel)
        assert model.complete(QUESTION) == "Hello world."
    assert not (tmp_path / "home" / "models").exists()  # no calibration written


def test_the_answerer_checks_a_partial_answer(tmp_path: Path, embedder: Embedder) -> None:
    """A stream cut halfway still gives a checked, cited answer; the engine says it was cut."""
    from assistant.answer.pipeline import Answer, Answerer
    from assistant.index.home import Home
    from assistant.ingest.pipeline import ingest

    documents = tmp_path / "docs"
    documents.mkdir()
    (documents / "kv-cache.md").write_text(
        "# The KV cache\n\nThe KV cache stores the keys and values of all previous tokens, for "
        "every layer.\nIt trades memory for compute.\n"
    )
    pieces = ("The KV cache stores the keys and values", " of all previous tokens.", " It")
    with fake_server(Script(pieces=pieces, mode="cut", cut_after=2)) as (url, _):
        config = settings(tmp_path, url)
        home = Home(config, embedder)
        try:
            for _ in ingest(home, [documents]):
                pass
            model = OpenAIModel.load(config, api_key="")
            events = list(Answerer(home, model).ask("What does the KV cache store?"))
        finally:
            home.close()
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert answer.grounded.raw_answer == "".join(pieces[:2])
    assert not answer.abstained and answer.cited_numbers() == [1]
    assert model.last_stats is not None and model.last_stats.stopped == "incomplete"
    # The answer says so, with the engine's reason, in `--json` too.
    assert answer.incomplete and answer.interruption == model.interruption
    data = answer.as_dict()
    assert data["incomplete"] is True and "broke off" in data["interruption"]
    assert data["timings"]["incomplete"] == 1.0
