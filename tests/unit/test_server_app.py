"""The HTTP API over a real uvicorn server on a free loopback port, driven by the official
`openai` client: a scripted language model (tests/fakes.py) over a small home with the real
embedder, store and checker, so each test takes about a second.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from starlette.applications import Starlette

from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.index.home import Home
from assistant.ingest.pipeline import ingest
from assistant.server.app import create_app
from assistant.server.serve import listening_socket, uvicorn_server
from assistant.server.settings import ServerSettings
from tests.fakes import ScriptedModel
from tests.postgres import Server

KV_CACHE = """# The KV cache

The KV cache stores the keys and values of all previous tokens, for every layer.
It trades memory for compute: each new token costs one forward pass over one position.

## How big the cache gets

The cache grows linearly with the context length and the number of layers.
For a 7B model with a 4,096-token context, the cache takes about 2 GB of memory.
"""
TOKENIZERS = """# Byte-pair encoding

Byte-pair encoding builds a tokenizer's vocabulary by merging the most frequent pair of symbols.
The merges are learned once from a training corpus and applied in the same order to new text.
"""
QUESTION = "What does the KV cache store?"
SUPPORTED = "The KV cache stores the keys and values of all previous tokens, for every layer."


class HeldModel(ScriptedModel):
    """Scripted, but each answer waits for `release` before its first word (the model is busy),
    and `delay` seconds before each word."""

    def __init__(self, text: str, delay: float = 0.0) -> None:
        super().__init__(text)
        self.started = threading.Event()
        self.release = threading.Event()
        self.delay = delay

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> Generator[str, None, None]:
        words = super().stream(messages, max_new_tokens=max_new_tokens)

        def held() -> Generator[str, None, None]:
            self.started.set()
            self.release.wait(30)
            for word in words:
                time.sleep(self.delay)
                yield word

        return held()


def _ingested_home(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, database_url: str | None = None
) -> Home:
    folder = tmp_path_factory.mktemp("docs")
    (folder / "kv-cache.md").write_text(KV_CACHE)
    (folder / "tokenizers.md").write_text(TOKENIZERS)
    home_folder = tmp_path_factory.mktemp("home")
    config = Config.load(environ={}, home=home_folder, database_url=database_url)
    assistant_home = Home(config, embedder)
    for _ in ingest(assistant_home, [folder]):
        pass
    return assistant_home


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Home]:
    assistant_home = _ingested_home(tmp_path_factory, embedder)
    yield assistant_home
    assistant_home.close()


@pytest.fixture(scope="module")
def postgres_home(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, postgres_server: Server
) -> Iterator[Home]:
    """The same documents in a PostgreSQL store (rows, full text and pgvector): a team's server."""
    url = postgres_server.fresh_database()
    assistant_home = _ingested_home(tmp_path_factory, embedder, url)
    assert assistant_home.in_database
    yield assistant_home
    assistant_home.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_home(request: pytest.FixtureRequest) -> Home:
    """`home`, then `postgres_home`: for the tests whose answers come from the store."""
    name = "home" if request.param == "sqlite" else "postgres_home"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """`app` under uvicorn on a free loopback port, in a thread; yields the API's base URL."""
    listening = listening_socket("127.0.0.1", 0)
    port = listening.getsockname()[1]
    server = uvicorn_server(app, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def client_of(
    home: Home, model: ScriptedModel, **settings: Any
) -> Iterator[tuple[openai.OpenAI, str]]:
    """An `openai` client (no retries) of a server over `home` and `model`, and its URL."""
    app = create_app(home.config, home=home, model=model, settings=ServerSettings(**settings))
    with serving(app) as url:
        key = settings.get("api_key") or "unused"
        yield openai.OpenAI(base_url=url, api_key=key, max_retries=0), url


@dataclass(frozen=True)
class Raw:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def raw(method: str, url: str, body: bytes | Iterable[bytes] | None = None) -> Raw:
    """One plain HTTP request, without a client's conventions (no key; an iterable body is sent
    chunked, without a Content-Length)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        chunked = body is not None and not isinstance(body, bytes)
        connection.request(method, parts.path, body=body, encode_chunked=chunked)
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Raw(response.status, headers, response.read().decode())
    finally:
        connection.close()


def ask(client: openai.OpenAI, messages: list[dict[str, str]]) -> Any:
    return client.chat.completions.create(model="assistant", messages=messages)  # type: ignore[arg-type]


def test_a_streamed_answer_sends_the_draft_then_the_checked_answer_with_citations(
    any_home: Home,
) -> None:
    home = any_home
    model = ScriptedModel(SUPPORTED)
    with client_of(home, model) as (client, _):
        stream = client.chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    drafts = [c.choices[0].delta.model_extra.get("reasoning_content") for c in chunks if c.choices]
    contents = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(d for d in drafts if d) == SUPPORTED  # the model's words, as they came
    text = "".join(c for c in contents if c)
    assert text.startswith(SUPPORTED.rstrip(".") + " [1].")
    assert "Sources:\n[1] " in text and "kv-cache.md:3-4 — The KV cache" in text
    last = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    citations = last.model_extra["citations"]
    assert [c["n"] for c in citations] == [1]
    assert citations[0]["source"].endswith("kv-cache.md")
    assert (citations[0]["start_line"], citations[0]["heading"]) == (3, "The KV cache")
    assert "keys and values" in citations[0]["text"]
    assert last.model_extra["grounding"]["abstained"] is False
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens > 0
    assert len({chunk.id for chunk in chunks}) == 1


def test_a_whole_answer_carries_the_same_text_citations_and_grounding(home: Home) -> None:
    with client_of(home, ScriptedModel(SUPPORTED)) as (client, _):
        response = ask(client, [{"role": "user", "content": QUESTION}])
    message = response.choices[0].message
    assert message.role == "assistant" and response.choices[0].finish_reason == "stop"
    assert message.content.startswith(SUPPORTED.rstrip(".") + " [1].")
    extra = response.model_extra
    assert extra["citations"][0]["source"].endswith("kv-cache.md")
    assert extra["grounding"]["sentences"][0] == {
        "text": SUPPORTED,
        "supported": True,
        "citations": [1],
    }
    assert response.usage.prompt_tokens > 0


def test_an_answer_the_documents_do_not_hold_abstains_with_the_closest_passages(
    home: Home,
) -> None:
    with client_of(home, ScriptedModel(SUPPORTED)) as (client, _):
        response = ask(client, [{"role": "user", "content": "Who wrote the novel Frankenstein?"}])
    assert response.model_extra["grounding"]["abstained"] is True
    assert response.model_extra["citations"] == []
    assert response.choices[0].message.content.startswith("I couldn't find this")


def test_the_models_list_names_the_one_model(home: Home) -> None:
    with client_of(home, ScriptedModel(SUPPORTED)) as (client, _):
        models = client.models.list().data
    assert [model.id for model in models] == ["assistant"]
    assert models[0].model_extra["language_model"] == "scripted"


def test_search_returns_passages_only(any_home: Home) -> None:
    home = any_home
    model = ScriptedModel(SUPPORTED)
    with client_of(home, model) as (client, _):
        found = client.post("/search", body={"query": "byte-pair merges", "k": 1}, cast_to=object)
        with pytest.raises(openai.BadRequestError, match="`k` must be"):
            client.post("/search", body={"query": "merges", "k": 0}, cast_to=object)
    assert isinstance(found, dict)
    assert len(found["data"]) == 1 and found["data"][0]["source"].endswith("tokenizers.md")
    assert found["data"][0]["heading"] == "Byte-pair encoding" and found["mode"] == "hybrid"
    assert model.taken == 0  # the model was not asked


def test_with_a_key_every_request_needs_it(home: Home) -> None:
    with client_of(home, ScriptedModel(SUPPORTED), api_key="s3cret-key") as (client, url):
        assert [model.id for model in client.models.list().data] == ["assistant"]
        other = openai.OpenAI(base_url=url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            other.models.list()
        bare = raw("POST", f"{url}/search", json.dumps({"query": "kv cache"}).encode())
        assert bare.status == 401
        assert bare.headers["www-authenticate"] == "Bearer"
        assert "s3cret" not in bare.text
        with pytest.raises(openai.AuthenticationError):
            ask(
                openai.OpenAI(base_url=url, api_key="nope", max_retries=0),
                [{"role": "user", "content": QUESTION}],
            )


def test_a_full_queue_answers_503_at_once(home: Home) -> None:
    model = HeldModel(SUPPORTED)
    with (
        client_of(home, model, queue_limit=0) as (client, _),
        ThreadPoolExecutor(1) as pool,
    ):
        first = pool.submit(ask, client, [{"role": "user", "content": QUESTION}])
        assert model.started.wait(10)  # the model is busy with the first question
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as refused:
            ask(client, [{"role": "user", "content": QUESTION}])
        assert refused.value.status_code == 503
        assert refused.value.response.headers["retry-after"]
        assert time.monotonic() - started < 5
        with pytest.raises(openai.APIStatusError, match="busy"):
            client.post("/search", body={"query": "kv cache"}, cast_to=object)
        model.release.set()
        assert first.result(10).model_extra["citations"]
        assert ask(client, [{"role": "user", "content": QUESTION}]).model_extra["citations"]


def test_requests_wait_their_turn_within_the_queue_limit(home: Home) -> None:
    model = HeldModel(SUPPORTED)
    with client_of(home, model, queue_limit=1) as (client, _), ThreadPoolExecutor(2) as pool:
        first = pool.submit(ask, client, [{"role": "user", "content": QUESTION}])
        assert model.started.wait(10)
        second = pool.submit(ask, client, [{"role": "user", "content": QUESTION}])
        time.sleep(0.3)  # the second is in the queue now: a third does not fit
        with pytest.raises(openai.APIStatusError) as refused:
            ask(client, [{"role": "user", "content": QUESTION}])
        assert refused.value.status_code == 503
        model.release.set()
        assert first.result(10).choices[0].message.content == (
            second.result(10).choices[0].message.content
        )


def test_an_oversized_request_is_refused_with_413(home: Home) -> None:
    model = ScriptedModel(SUPPORTED)
    with client_of(home, model, max_request_bytes=10_000) as (client, url):
        with pytest.raises(openai.APIStatusError) as refused:
            ask(client, [{"role": "user", "content": "what? " * 5_000}])
        assert refused.value.status_code == 413
        # Without a Content-Length (chunked), the body is counted as it comes.
        chunked = raw("POST", f"{url}/search", iter([b'{"query": "', b"x" * 20_000]))
        assert chunked.status == 413
        assert ask(client, [{"role": "user", "content": QUESTION}]).choices  # still serving
    assert model.taken == len(model.words)  # only the last request reached the model


def test_a_follow_up_retrieves_the_file_of_the_earlier_turn(home: Home) -> None:
    with client_of(home, ScriptedModel(SUPPORTED)) as (client, _):
        first = ask(client, [{"role": "user", "content": QUESTION}])
        follow_up = "How big does it get?"
        response = ask(
            client,
            [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": follow_up},
            ],
        )
        alone = ask(client, [{"role": "user", "content": follow_up}])
    grounding = response.model_extra["grounding"]
    assert grounding["query"].startswith(follow_up) and "KV" in grounding["query"]
    assert [passage["source"].endswith("kv-cache.md") for passage in grounding["retrieved"]][
        :2
    ] == [True, True]
    assert alone.model_extra["grounding"]["query"] == follow_up  # nothing to refer back to


def test_concurrent_requests_all_get_the_same_answer_and_leave_the_store_sound(
    any_home: Home,
) -> None:
    home = any_home
    model = ScriptedModel(SUPPORTED)
    with client_of(home, model) as (client, _), ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: ask(client, [{"role": "user", "content": QUESTION}]), range(6))
        )
        found = list(
            pool.map(
                lambda _: client.post("/search", body={"query": "kv cache"}, cast_to=object),
                range(6),
            )
        )
    assert len({answer.choices[0].message.content for answer in answers}) == 1
    assert len({str(result["data"]) for result in found}) == 1  # type: ignore[index]
    check = home.check()
    assert check.database == "ok" and check.problems == []


def test_a_client_that_goes_away_stops_its_answer(home: Home) -> None:
    model = HeldModel(" ".join([SUPPORTED] * 20), delay=0.02)
    model.release.set()
    with client_of(home, model) as (client, _):
        stream = client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.model_extra.get("reasoning_content"):
                break
        stream.close()
        deadline = time.monotonic() + 5
        taken = -1
        while time.monotonic() < deadline and taken != model.taken:  # until it stops
            taken = model.taken
            time.sleep(0.3)
        assert model.taken < len(model.words)
        assert ask(client, [{"role": "user", "content": QUESTION}]).choices  # the queue is free


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "last message must be the user"),
        ({"messages": []}, "`messages` must be a non-empty list"),
        ({"messages": [{"role": "user", "content": QUESTION}], "n": 2}, "`n` must be 1"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "only text"),
    ],
)
def test_requests_the_api_does_not_allow_get_400(
    home: Home, body: dict[str, Any], message: str
) -> None:
    with client_of(home, ScriptedModel(SUPPORTED)) as (client, url):
        with pytest.raises(openai.BadRequestError, match=message):
            client.post("/chat/completions", body=body, cast_to=object)
        broken = raw("POST", f"{url}/chat/completions", b"{not json")
        missing = raw("GET", f"{url}/nowhere")
    assert broken.status == 400 and "not valid JSON" in broken.json()["error"]["message"]
    assert missing.status == 404 and missing.json()["error"]["message"] == "Not Found"


def test_text_parts_are_read_as_one_question(home: Home) -> None:
    with client_of(home, ScriptedModel(SUPPORTED)) as (client, _):
        response = client.chat.completions.create(
            model="anything",
            messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        )
    assert response.model == "assistant"
    assert response.model_extra["grounding"]["query"] == QUESTION


def test_a_scope_limits_search_and_answers_to_its_paths(any_home: Home) -> None:
    home = any_home
    tokenizers = next(row.path for row in home.store.documents() if row.path.endswith("rs.md"))
    nowhere = tokenizers.rsplit("/", 1)[0] + "/nowhere"
    question = [{"role": "user", "content": QUESTION}]
    with client_of(home, ScriptedModel(SUPPORTED)) as (client, _):
        body = {"query": QUESTION, "k": 3, "scope": [tokenizers]}
        found = client.post("/search", body=body, cast_to=object)
        response = client.chat.completions.create(
            model="assistant",
            messages=question,  # type: ignore[arg-type]
            extra_body={"scope": [tokenizers]},
        )
        with pytest.raises(openai.BadRequestError, match=f"nothing ingested under {nowhere}"):
            client.post("/search", body={"query": "x", "scope": [nowhere]}, cast_to=object)
        with pytest.raises(openai.BadRequestError, match="nothing ingested under"):
            ask_in = {"model": "assistant", "messages": question, "scope": [nowhere]}
            client.post("/chat/completions", body=ask_in, cast_to=object)
        with pytest.raises(openai.BadRequestError, match="`scope` must be a list"):
            client.post("/search", body={"query": "x", "scope": tokenizers}, cast_to=object)
    assert isinstance(found, dict)
    assert [hit["source"] for hit in found["data"]] == [tokenizers]
    assert found["scope"] == [tokenizers]
    grounding = response.model_extra["grounding"]
    assert grounding["scope"] == [tokenizers]
    assert [hit["source"] for hit in grounding["retrieved"]] == [tokenizers]
