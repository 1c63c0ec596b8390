"""`assistant serve` with the real bundled models over the sample corpus: the command itself in a
subprocess on a free loopback port, driven by the official `openai` client (greedy decoding).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

pytestmark = pytest.mark.e2e

KEY = "e2e-key"
QUESTION = "What does the KV cache store?"
STARTUP_SECONDS = 600  # the first load of the model on a CPU converts and measures it


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(sample_environment: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`assistant serve --api-key KEY` on a free port, once ready; its base URL and process."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--queue-limit", "4"],
        env={**sample_environment, "ASSISTANT_API_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=5)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"assistant serve exited:\n{process.stdout.read()}")  # type: ignore[union-attr]
        try:
            client.models.list()
            break
        except openai.APIConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.5)
    yield url, process
    if process.poll() is None:
        process.kill()
        process.wait(10)


@pytest.fixture
def client(server: tuple[str, subprocess.Popen[str]]) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0], api_key=KEY, max_retries=0, timeout=600)


def _ask(client: openai.OpenAI, messages: list[dict[str, str]]) -> Any:
    return client.chat.completions.create(model="assistant", messages=messages)  # type: ignore[arg-type]


def test_a_streamed_answer_cites_the_kv_cache_file(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    draft = "".join(delta.model_extra.get("reasoning_content") or "" for delta in deltas)
    text = "".join(delta.content or "" for delta in deltas)
    last = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    citations = last.model_extra["citations"]
    assert draft.strip()  # the model's own words came first, as it wrote them
    assert not last.model_extra["grounding"]["abstained"]
    assert citations and all(c["source"].endswith("kv-cache.md") for c in citations)
    assert f"[{citations[0]['n']}]" in text and "Sources:" in text
    assert all(c["text"] and c["heading"].startswith("The KV Cache") for c in citations)


def test_a_follow_up_is_answered_from_the_file_of_the_first_question(
    client: openai.OpenAI,
) -> None:
    first = _ask(client, [{"role": "user", "content": QUESTION}])
    follow_up = "How big does it get?"
    response = _ask(
        client,
        [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": follow_up},
        ],
    )
    grounding = response.model_extra["grounding"]
    assert grounding["query"].startswith(follow_up) and "KV" in grounding["query"]
    assert grounding["retrieved"][0]["source"].endswith("kv-cache.md")
    assert response.choices[0].message.content


def test_search_finds_the_passages_without_the_model(client: openai.OpenAI) -> None:
    found = client.post("/search", body={"query": "reciprocal rank fusion", "k": 2}, cast_to=object)
    assert isinstance(found, dict) and len(found["data"]) == 2
    assert found["data"][0]["source"].endswith("reciprocal-rank-fusion.html")


def test_without_the_key_nothing_is_answered(server: tuple[str, subprocess.Popen[str]]) -> None:
    stranger = openai.OpenAI(base_url=server[0], api_key="guess", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        _ask(stranger, [{"role": "user", "content": QUESTION}])


def test_ctrl_c_stops_the_server_and_the_key_was_never_printed(
    server: tuple[str, subprocess.Popen[str]],
) -> None:
    process = server[1]
    os.kill(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode in (0, 130), output
    assert "Serving your documents at http://127.0.0.1:" in output
    assert KEY not in output
