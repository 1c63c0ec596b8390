"""Reading OpenAI requests: what is taken, what is ignored, and what is refused (HTTP 400)."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.answer.pipeline import Answer, Timings
from assistant.grounding.checker import GroundedAnswer
from assistant.server.protocol import (
    ChatRequest,
    Message,
    ProtocolError,
    SearchRequest,
    completion,
    grounding,
)


def test_a_chat_request_keeps_the_messages_and_the_streaming_options() -> None:
    request = ChatRequest.parse(
        {
            "model": "whatever",
            "temperature": 0.7,  # accepted, and the server's own setting decides
            "max_tokens": 12,
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [
                {"role": "developer", "content": "Be nice."},
                {"role": "assistant", "content": None, "tool_calls": []},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
        }
    )
    assert request == ChatRequest(
        (Message("developer", "Be nice."), Message("assistant", ""), Message("user", "a\nb")),
        stream=True,
        include_usage=True,
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "JSON object"),
        ({}, "`messages` must be a non-empty list"),
        ({"messages": ["hi"]}, "message 1 must be an object"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "message 1 has no valid `role`"),
        ({"messages": [{"role": "user", "content": 3}]}, "must be a string or a list"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "`stream`"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 3}, "`n` must be 1"),
    ],
)
def test_a_chat_request_outside_the_api_is_refused(body: Any, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        ChatRequest.parse(body)


def test_a_search_request_takes_k_or_top_k_and_a_mode() -> None:
    assert SearchRequest.parse({"query": "  kv   cache "}) == SearchRequest("kv cache")
    assert SearchRequest.parse({"query": "q", "top_k": 3, "mode": "dense"}) == SearchRequest(
        "q", 3, "dense"
    )


@pytest.mark.parametrize(
    "body",
    [{"query": ""}, {"query": 3}, {"query": "q", "k": 0}, {"query": "q", "k": True},
     {"query": "q", "k": 1000}, {"query": "q", "mode": "fuzzy"}],
)  # fmt: skip
def test_a_search_request_outside_the_api_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        SearchRequest.parse(body)


def test_an_answer_the_model_server_broke_off_is_marked_in_the_grounding() -> None:
    grounded = GroundedAnswer("Half of it.", False, None, (), "Half of it.")
    whole = Answer("q", "q", grounded, (), "openai:fake")
    cut = Answer(
        "q", "q", grounded, (), "openai:fake", timings=Timings(incomplete=True), interruption="why"
    )
    assert "incomplete" not in grounding(whole) and "interruption" not in grounding(whole)
    assert (grounding(cut)["incomplete"], grounding(cut)["interruption"]) == (True, "why")
    # Not "length": the token limit did not end it.
    assert completion("id", 0, "Half of it.", cut)["choices"][0]["finish_reason"] == "stop"
