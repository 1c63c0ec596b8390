"""The answer pipeline with a scripted language model (the real embedder, store and checker).

The scripted model "generates" a fixed text one word at a time and counts the words it was
asked for, so the tests see exactly when the answerer stops generation. A recording embedding
function shows which texts the checker embedded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from assistant.answer.pipeline import Answer, Answerer, Retrieved
from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.grounding.checker import GroundingReason, SupportChecker, evidence_units
from assistant.grounding.verifier import Thresholds
from assistant.index.home import Home
from assistant.ingest.pipeline import ingest
from tests.fakes import ScriptedModel

DOCUMENT = """# The KV cache

The KV cache stores the keys and values of all previous tokens, for every layer.
It trades memory for compute: each new token costs one forward pass over one position.

# Memory

The cache grows linearly with the context length and the number of layers.
For a 7B model with a 4,096-token context, the cache takes about 2 GB.
"""
QUESTION = "What does the KV cache store?"
SUPPORTED = "The KV cache stores the keys and values of all previous tokens, for every layer."
DRIFT = (
    "Paris is the capital of France. The Eiffel Tower was finished in 1889. "
    "Bananas are a yellow tropical fruit. Cats sleep for most of the day. "
    "Dogs bark at the postman every morning. Rivers flow into the sea."
)


class RecordingEmbed:
    """The real embedding function, remembering every text it was given."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.texts: list[str] = []

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.floating]:
        self.texts.extend(texts)
        return self.embedder.embed(texts)


@contextmanager
def _home(tmp_path: Path, embedder: Embedder, notes: int = 0, **settings: object) -> Iterator[Home]:
    """A home with DOCUMENT and `notes` short notes ingested, under these settings; closed
    afterwards."""
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    (folder / "kv-cache.md").write_text(DOCUMENT)
    for number in range(notes):
        (folder / f"note-{number}.md").write_text(
            f"# Note {number}\n\nThe KV cache is kept in memory while the model decodes. "
            "Each note repeats that the cache grows with every new token of the context.\n"
        )
    home = Home(Config.load(environ={}, home=tmp_path / "home", **settings), embedder)
    try:
        for _ in ingest(home, [folder]):
            pass
        yield home
    finally:
        home.close()


@pytest.fixture
def home(tmp_path: Path, embedder: Embedder) -> Iterator[Home]:
    with _home(tmp_path, embedder) as home:
        yield home


def _ask(home: Home, model: ScriptedModel, question: str = QUESTION) -> tuple[list[str], Answer]:
    events = list(Answerer(home, model).ask(question))
    assert isinstance(events[0], Retrieved)
    pieces = [event for event in events if isinstance(event, str)]
    answer = events[-1]
    assert isinstance(answer, Answer)
    return pieces, answer


def test_generation_stops_after_three_unsupported_sentences(home: Home) -> None:
    model = ScriptedModel(DRIFT)
    pieces, answer = _ask(home, model)
    assert model.taken < len(model.words)
    assert answer.timings.gave_up
    streamed = "".join(pieces)
    assert "Cats sleep" in streamed  # the fourth sentence had begun: three were complete
    assert "Dogs" not in streamed
    # What the model wrote is not shown as the answer: quotes of the passage, or an abstention.
    assert "Paris" not in answer.text
    assert answer.abstained or answer.grounded.reason is GroundingReason.EXTRACTIVE


def test_a_supported_sentence_lets_the_model_finish(home: Home) -> None:
    model = ScriptedModel(f"{SUPPORTED} {DRIFT}")
    pieces, answer = _ask(home, model)
    assert model.taken == len(model.words)
    assert not answer.timings.gave_up
    assert answer.grounded.sentences[0].supported
    assert "".join(pieces) == model.complete([])


def test_giving_up_can_be_turned_off(tmp_path: Path, embedder: Embedder) -> None:
    with _home(tmp_path, embedder, give_up_after=0) as home:
        model = ScriptedModel(DRIFT)
        _, answer = _ask(home, model)
        assert model.taken == len(model.words)
        assert not answer.timings.gave_up


def test_a_mostly_supported_answer_is_kept_with_its_unsupported_sentence_flagged(
    home: Home,
) -> None:
    text = f"{SUPPORTED} It trades memory for compute. Paris is the capital of France."
    _, answer = _ask(home, ScriptedModel(text))
    assert answer.grounded.reason is None
    assert [claim.supported for claim in answer.grounded.claims] == [True, True, False]
    assert "Paris" in answer.text


def test_a_mostly_unsupported_answer_gives_way_to_quotes(home: Home) -> None:
    text = f"{SUPPORTED} Paris is the capital of France. Bananas are a yellow fruit. Cats nap."
    _, answer = _ask(home, ScriptedModel(text))
    assert answer.grounded.reason is GroundingReason.EXTRACTIVE
    assert "Paris" not in answer.text and "Bananas" not in answer.text
    assert all(claim.supported for claim in answer.grounded.claims)


class ScriptedVerifier:
    """A fake trained verifier: a claim is supported by a window holding all its words, and its
    answerability scores are the given ones, in the order asked (the last one repeats); the
    windows of every answerability question are kept."""

    def __init__(self, *answerability: float) -> None:
        self.thresholds = Thresholds(support=0.5, answerable=0.5)
        self.answerability = answerability
        self.asked: list[list[str]] = []

    def support(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [0.9 if _words(claim) <= _words(window) else 0.1 for window, claim in pairs]

    def answerable(self, question: str, windows: Sequence[str]) -> float:
        self.asked.append(list(windows))
        return self.answerability[min(len(self.asked), len(self.answerability)) - 1]


def _words(text: str) -> set[str]:
    return {word.strip(".,?!:").lower() for word in text.split()} - {"", "claim"}


def _ask_verified(home: Home, verifier: ScriptedVerifier) -> Answer:
    checker = SupportChecker(home.embedder.embed, verifier=verifier)
    events = list(Answerer(home, ScriptedModel(DRIFT), checker).ask(QUESTION))
    answer = events[-1]
    assert isinstance(answer, Answer)
    return answer


def test_with_the_verifier_quotes_that_answer_stand_in(home: Home) -> None:
    verifier = ScriptedVerifier(0.9, 0.9)  # the passages answer, and so do the quotes
    answer = _ask_verified(home, verifier)
    assert answer.grounded.reason is GroundingReason.EXTRACTIVE
    # The second question to the verifier was about the quoted sentences themselves.
    quoted = [sentence.text for sentence in answer.grounded.sentences]
    assert len(verifier.asked) == 2 and set(quoted) <= set(verifier.asked[1])


def test_with_the_verifier_quotes_that_do_not_answer_give_way_to_abstaining(home: Home) -> None:
    verifier = ScriptedVerifier(0.9, 0.1)  # the passages answer, the quotes picked do not
    answer = _ask_verified(home, verifier)
    assert answer.abstained
    assert answer.grounded.reason is GroundingReason.NO_SUPPORTED_SENTENCE
    assert len(verifier.asked) == 2


def test_with_the_verifier_unanswered_questions_get_no_quotes(home: Home) -> None:
    verifier = ScriptedVerifier(0.1)
    answer = _ask_verified(home, verifier)
    assert answer.grounded.reason is GroundingReason.UNANSWERED
    assert len(verifier.asked) == 1  # the quotes were not looked for


def test_the_supported_share_can_be_lowered(tmp_path: Path, embedder: Embedder) -> None:
    with _home(tmp_path, embedder, min_supported_share=0.0) as home:
        text = f"{SUPPORTED} Paris is the capital of France. Bananas are a yellow fruit."
        _, answer = _ask(home, ScriptedModel(text))
        assert answer.grounded.reason is None
        assert "Paris" in answer.text  # shown, flagged as unsupported


def test_a_name_the_documents_never_mention_abstains_before_generating(home: Home) -> None:
    model = ScriptedModel(SUPPORTED)
    _, answer = _ask(home, model, "What does the KV cache of Mistral store?")
    assert model.taken == 0
    assert answer.abstained and answer.grounded.reason is GroundingReason.MISSING_TERMS
    assert answer.text == (
        'I couldn\'t find this in your documents. The passages found never mention "Mistral".'
    )
    assert answer.passages  # shown as the closest passages


def test_names_the_documents_mention_go_on_to_generation(home: Home) -> None:
    model = ScriptedModel(SUPPORTED)
    _, answer = _ask(home, model, "What does the KV cache store, layer by layer?")
    assert model.taken == len(model.words)
    assert not answer.abstained


def test_the_question_terms_check_can_be_turned_off(tmp_path: Path, embedder: Embedder) -> None:
    with _home(tmp_path, embedder, require_question_terms=False) as home:
        model = ScriptedModel(SUPPORTED)
        _, answer = _ask(home, model, "What does the KV cache of Mistral store?")
        assert model.taken == len(model.words)
        assert answer.grounded.reason is not GroundingReason.MISSING_TERMS


def test_a_weak_retrieval_abstention_names_the_missing_words_too(home: Home) -> None:
    model = ScriptedModel(SUPPORTED)
    _, answer = _ask(home, model, "Who wrote the novel Frankenstein?")
    assert model.taken == 0
    assert answer.grounded.reason is GroundingReason.WEAK_RETRIEVAL
    assert answer.text.endswith('never mention "Frankenstein".')


def test_an_answer_without_the_number_asked_for_abstains(home: Home) -> None:
    model = ScriptedModel(SUPPORTED)  # supported, on topic, but no number
    _, answer = _ask(home, model, "How many layers does the KV cache hold keys for?")
    assert model.taken == len(model.words)
    assert answer.abstained and answer.grounded.reason is GroundingReason.ANSWER_TYPE
    assert answer.text == (
        "I couldn't find this in your documents. The passages found give no number for it."
    )
    assert answer.grounded.raw_answer == SUPPORTED  # kept for the record


def test_an_answer_with_the_number_asked_for_stands(home: Home) -> None:
    text = "For a 7B model with a 4,096-token context, the cache takes about 2 GB."
    _, answer = _ask(home, ScriptedModel(text), "How much memory does the KV cache take?")
    assert not answer.abstained
    assert "2 GB" in answer.text


def test_the_answer_type_check_can_be_turned_off(tmp_path: Path, embedder: Embedder) -> None:
    with _home(tmp_path, embedder, require_answer_type=False) as home:
        _, answer = _ask(
            home, ScriptedModel(SUPPORTED), "How many layers does the KV cache hold keys for?"
        )
        assert answer.grounded.reason is not GroundingReason.ANSWER_TYPE
        assert not answer.abstained


def test_a_k_far_larger_than_the_window_is_cut_before_anything_is_embedded(
    tmp_path: Path, embedder: Embedder
) -> None:
    with _home(tmp_path, embedder, notes=40, answer_reserve=64) as home:
        assert home.store.counts()["chunks"] > 40
        recording = RecordingEmbed(embedder)
        checker = SupportChecker(
            recording,
            threshold=home.config.support_threshold,
            min_evidence_score=home.config.min_retrieval_score,
        )
        model = ScriptedModel(SUPPORTED, context_length=300)
        events = list(Answerer(home, model, checker).ask(QUESTION, k=100_000))
    retrieved, answer = events[0], events[-1]
    assert isinstance(retrieved, Retrieved) and isinstance(answer, Answer)
    # 300 tokens hold a handful of passages: only those were retrieved and ever embedded.
    assert 1 <= len(answer.passages) <= len(retrieved.passages) <= 8
    assert (answer.k_requested, answer.k_used) == (100_000, len(retrieved.passages))
    assert answer.as_dict()["k_used"] == answer.k_used
    units = {unit for passage in retrieved.passages for unit in evidence_units(passage.text)}
    assert set(recording.texts) <= {QUESTION, SUPPORTED, *units}
    assert answer.budget is not None and answer.budget.free >= 0


def test_a_k_the_window_holds_is_used_as_asked(home: Home) -> None:
    events = list(Answerer(home, ScriptedModel(SUPPORTED)).ask(QUESTION, k=3))
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert (answer.k_requested, answer.k_used) == (3, 3)  # the store holds fewer; not a cut


def test_the_json_holds_reasons_and_timings_as_before(home: Home) -> None:
    """`--json` writes a reason as its plain string and only the timings that were measured,
    numbers in the order they are taken (`gave_up` as 1.0)."""
    _, early = _ask(home, ScriptedModel(SUPPORTED), "What does the KV cache of Mistral store?")
    data = json.loads(json.dumps(early.as_dict()))
    assert data["abstain_reason"] == "missing_terms" == early.grounded.reason
    assert list(data["timings"]) == ["retrieval_ms", "total_s"]
    _, stopped = _ask(home, ScriptedModel(DRIFT))
    timings = json.loads(json.dumps(stopped.as_dict()))["timings"]
    assert list(timings) == [
        "retrieval_ms", "ttft_ms", "gave_up", "generation_s", "tokens", "tokens_per_s", "total_s"
    ]  # fmt: skip
    assert (timings["gave_up"], timings["tokens"]) == (1.0, 0.0)  # the scripted model counts none
    # `incomplete` is written only for an answer a model server broke off.
    assert not stopped.incomplete and "incomplete" not in stopped.as_dict()
    assert all(isinstance(value, float) for value in timings.values())
