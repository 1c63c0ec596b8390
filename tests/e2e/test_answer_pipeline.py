"""`assistant ask` end to end with the real bundled models and greedy decoding.

The sample corpus is ingested once into a temporary home; converted model weights go to a cache
shared by the whole test session, so the GGUF is de-quantized once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

ASSISTANT = [sys.executable, "-m", "assistant"]


@pytest.fixture
def environment(sample_environment: dict[str, str]) -> dict[str, str]:
    return sample_environment


def ask(environment: dict[str, str], question: str) -> dict[str, object]:
    result = subprocess.run(
        [*ASSISTANT, "ask", question, "--json"],
        env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_answerable_question_is_cited_to_passages_holding_the_facts(
    environment: dict[str, str],
) -> None:
    answer = ask(environment, "What does the KV cache store?")
    assert answer["abstained"] is False, answer
    citations = answer["citations"]
    assert isinstance(citations, list) and citations
    by_number = {c["n"]: c for c in citations}
    sentences = answer["sentences"]
    assert isinstance(sentences, list)
    for sentence in sentences:
        for number in sentence["citations"]:
            assert number in by_number  # every marker points at a listed passage
    texts = " ".join(c["text"].lower() for c in citations)
    assert "key" in texts and "value" in texts
    assert all(c["source"].endswith(".md") or c["source"].endswith(".pdf") for c in citations)


def test_unanswerable_question_abstains(environment: dict[str, str]) -> None:
    answer = ask(environment, "Who wrote the novel Frankenstein?")
    assert answer["abstained"] is True
    assert answer["abstain_reason"] == "weak_retrieval"
    assert answer["answer"] == (
        'I couldn\'t find this in your documents. The passages found never mention "Frankenstein".'
    )
    assert answer["citations"] == []


def test_json_schema(environment: dict[str, str]) -> None:
    answer = ask(environment, "What is nucleus sampling?")
    assert {"question", "answer", "abstained", "sentences", "citations", "timings", "model"} <= set(
        answer
    )
    timings = answer["timings"]
    assert isinstance(timings, dict) and "retrieval_ms" in timings
    for citation in answer["citations"]:  # type: ignore[attr-defined]
        assert set(citation) >= {
            "n", "source", "start_line", "end_line", "page", "heading", "text", "score"
        }  # fmt: skip
    if not answer["abstained"]:
        assert {"ttft_ms", "generation_s", "tokens", "tokens_per_s"} <= set(timings)
        assert answer["budget"]["total"] <= answer["budget"]["window"]  # type: ignore[index]


def test_ctrl_c_mid_answer_exits_cleanly(environment: dict[str, str]) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "assistant", "ask", "Explain how the KV cache works in detail."],
        env={**environment, "ASSISTANT_MAX_NEW_TOKENS": "256"},
        timeout=600,  # the first load may convert and calibrate the model on a busy machine
        encoding="utf-8",
    )
    child.expect("thinking")
    child.kill(signal.SIGINT)
    child.expect(pexpect.EOF)
    child.close()
    assert "Traceback" not in (child.before or "")
    assert child.exitstatus == 130 or child.signalstatus == signal.SIGINT
