"""Answer one question from the documents: retrieve, build the prompt, stream, check citations.

`Answerer.ask` is a generator: first a `Retrieved` event (the passages found), then the answer's
text pieces as the model produces them (plain `str`), then one `Answer` with the checked result.
The tiny default model cannot be trusted to cite, so the answer that counts is the checked one:
every sentence is matched against the passages, citations are chosen by the system, and the
assistant abstains when retrieval is weak or a name or number of the question is in none of the
passages (both before generating anything), when nothing the model said is supported by the
passages, or when the question asks for a quantity or a time and the answer holds none
(`answer_types`).

The work is bounded by the context window first: `k` is cut to the passages the prompt could hold
before retrieval, and the hits to the ones that may fit before any is embedded or checked, so a
huge `k` costs no more than the window allows. The answer says when `k` was cut.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from assistant.answer.context import Budget, ContextWindow, Prompt, format_passage
from assistant.answer.memory import Turn, rewrite_query
from assistant.errors import InputError
from assistant.grounding.answer_types import QUANTITY, asked_kind, holds_kind
from assistant.grounding.checker import (
    ABSTAIN_MESSAGE,
    GroundedAnswer,
    SentenceCheck,
    SupportChecker,
)
from assistant.grounding.quotes import best_quotes
from assistant.index.home import Home
from assistant.index.passage import Passage
from assistant.prompts import fill_prompt, load_prompt
from assistant.text.sentences import sentence_spans

if TYPE_CHECKING:
    from assistant.llm.base import ChatModel


@dataclass(frozen=True)
class Retrieved:
    """The passages found for a question (before any text is generated)."""

    query: str  # what was searched: the question, rewritten to stand alone if it was a follow-up
    passages: tuple[Passage, ...]
    milliseconds: float


@dataclass(frozen=True)
class Answer:
    """The checked answer to one question, with everything needed to show or score it."""

    question: str
    query: str
    grounded: GroundedAnswer
    passages: tuple[Passage, ...]  # as numbered in the prompt: passage n is passages[n - 1]
    model: str
    budget: Budget | None = None
    folded_turns: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    k_requested: int = 0  # the passages asked for
    # The passages retrieved and checked: as many, or fewer when the context window cannot hold
    # them (the prompt may hold fewer still: `passages`).
    k_used: int = 0

    @property
    def text(self) -> str:
        return self.grounded.answer

    @property
    def abstained(self) -> bool:
        return self.grounded.abstained

    def cited_numbers(self) -> list[int]:
        numbers = {
            number
            for sentence in self.grounded.sentences
            if sentence.supported
            for number in sentence.citations
        }
        return sorted(number for number in numbers if 1 <= number <= len(self.passages))

    def cited_passages(self) -> list[tuple[int, Passage]]:
        return [(number, self.passages[number - 1]) for number in self.cited_numbers()]

    def as_dict(self) -> dict[str, Any]:
        """The `assistant ask --json` object."""
        return {
            "question": self.question,
            "query": self.query,
            "answer": self.grounded.answer,
            "abstained": self.grounded.abstained,
            "abstain_reason": self.grounded.reason,
            "sentences": [
                {
                    "text": sentence.text,
                    "supported": sentence.supported,
                    "citations": list(sentence.citations),
                    "score": round(sentence.score, 4),
                }
                for sentence in self.grounded.sentences
            ],
            "citations": [
                {
                    "n": number,
                    "source": passage.source,
                    "start_line": passage.start_line,
                    "end_line": passage.end_line,
                    "page": passage.page,
                    "heading": passage.heading,
                    "text": passage.text,
                    "score": round(passage.score, 6),
                }
                for number, passage in self.cited_passages()
            ],
            "retrieved": [
                {"n": number, "source": passage.source, "location": passage.location}
                for number, passage in enumerate(self.passages, start=1)
            ],
            "raw_answer": self.grounded.raw_answer,
            "timings": {name: round(value, 3) for name, value in self.timings.items()},
            "budget": self.budget.as_dict() if self.budget is not None else None,
            "k_requested": self.k_requested,
            "k_used": self.k_used,
            "model": self.model,
        }


AnswerEvent = Retrieved | str | Answer


def render_user_message(question: str, passages: Sequence[Passage]) -> str:
    """The user turn of the prompt, from `prompts/answer.md`."""
    blocks = "\n\n".join(format_passage(n, passage) for n, passage in enumerate(passages, 1))
    return fill_prompt("answer", passages=blocks, question=question)


class Answerer:
    """Answers questions over one home with one language model."""

    def __init__(
        self,
        home: Home,
        language_model: ChatModel,
        checker: SupportChecker | None = None,
    ) -> None:
        config = home.config
        self.home = home
        self.config = config
        self.language_model = language_model
        self.checker = checker or SupportChecker(
            home.embedder.embed,
            threshold=config.support_threshold,
            min_evidence_score=config.min_retrieval_score,
        )
        self.retriever = home.retriever()
        self.window = ContextWindow(
            language_model.count_tokens,
            language_model.count_message_tokens,
            context_length=language_model.context_length,
            answer_reserve=config.answer_reserve,
        )

    def build_prompt(
        self, question: str, passages: Sequence[Passage], turns: Sequence[Turn], summary: str
    ) -> Prompt:
        return self.window.assemble(
            system=load_prompt("system"),
            question=question,
            passages=passages,
            summary=summary,
            turns=turns,
            render_user=render_user_message,
        )

    def ask(
        self,
        question: str,
        *,
        turns: Sequence[Turn] = (),
        summary: str = "",
        k: int | None = None,
    ) -> Generator[AnswerEvent, None, None]:
        """Retrieve, stream and check one answer (see the module docstring for the events)."""
        question = " ".join(question.split())
        if not question:
            raise InputError("the question is empty")
        started = time.perf_counter()
        query = rewrite_query(question, turns) if self.config.rewrite_follow_ups else question
        requested = k or self.config.top_k
        room = self.window.passage_room(
            system=load_prompt("system"),
            question=question,
            turns=turns,
            render_user=render_user_message,
        )
        searched = min(requested, self.window.most_passages(room))
        result = self.retriever.search(query, searched)
        passages = tuple(self.window.passages_within(result.passages, room))
        # Cut by the window: hits left out, or a capped search that found all it was allowed.
        cut = len(passages) < len(result.passages) or len(result.passages) == searched < requested
        used = len(passages) if cut else requested
        yield Retrieved(query, passages, result.milliseconds)
        timings: dict[str, float] = {"retrieval_ms": result.milliseconds}

        missing = self.checker.missing_terms(question, passages) if passages else []
        # Either way, say which words of the question the passages never mention.
        detail = _not_mentioned(missing) if missing else ""
        early = None
        if not passages or self.checker.evidence_is_weak(query, passages):
            early = _abstention("weak_retrieval", detail)
        elif missing and self.config.require_question_terms:
            early = _abstention("missing_terms", detail)
        if early is not None:
            timings["total_s"] = time.perf_counter() - started
            yield Answer(
                question,
                query,
                early,
                passages,
                self.language_model.name,
                timings=timings,
                k_requested=requested,
                k_used=used,
            )
            return

        prompt = self.build_prompt(question, passages, turns, summary)
        limit = min(self.config.max_new_tokens, self.config.answer_reserve)
        pieces: list[str] = []
        generation_started = time.perf_counter()
        stream = self.language_model.stream(prompt.messages, max_new_tokens=limit)
        watch = _GiveUpWatch(self.checker, prompt.passages, self.config.give_up_after)
        try:
            for piece in stream:
                if not pieces:
                    timings["ttft_ms"] = (time.perf_counter() - started) * 1000
                pieces.append(piece)
                yield piece
                if watch.should_stop(piece, pieces):
                    timings["gave_up"] = 1.0
                    break
        finally:
            stream.close()
        stats = self.language_model.last_stats
        timings["generation_s"] = time.perf_counter() - generation_started
        timings["tokens"] = float(stats.new_tokens if stats else 0)
        timings["tokens_per_s"] = stats.tokens_per_s if stats else 0.0
        grounded = self.checker.check(
            "".join(pieces), prompt.passages, unsupported=self.config.unsupported
        )
        if self.config.extractive_fallback and _mostly_unsupported(
            grounded, self.config.min_supported_share
        ):
            grounded = self._quote(question, prompt.passages, grounded)
        if self.config.require_answer_type:
            grounded = _typed(question, grounded)
        timings["total_s"] = time.perf_counter() - started
        yield Answer(
            question,
            query,
            grounded,
            prompt.passages,
            self.language_model.name,
            budget=prompt.budget,
            folded_turns=prompt.folded_turns,
            timings=timings,
            k_requested=requested,
            k_used=used,
        )

    def _quote(
        self, question: str, passages: Sequence[Passage], rejected: GroundedAnswer
    ) -> GroundedAnswer:
        """The best passage sentences, quoted and cited, if they answer well enough; else the
        checked answer as it was (an abstention, or a partly supported answer, flagged)."""
        quotes = best_quotes(question, passages, self.checker.embed)
        if not quotes or quotes[0].score < self.config.min_quote_score:
            return rejected
        sentences = tuple(
            SentenceCheck(
                text=quote.text,
                supported=True,
                citations=(quote.passage,),
                model_citations=(),
                score=quote.score,
                is_claim=True,
                display=f"{quote.text} [{quote.passage}]",
            )
            for quote in quotes
        )
        return GroundedAnswer(
            answer=" ".join(sentence.display for sentence in sentences),
            abstained=False,
            reason="extractive",
            sentences=sentences,
            raw_answer=rejected.raw_answer,
        )


class _GiveUpWatch:
    """Watches the streamed answer: once `after` sentences are complete and not one of them is
    supported by the passages, more text from this model will not be either (it has drifted into
    its own memory), so generation stops; the check then quotes the passages or abstains. Once
    a sentence is supported the watch ends and the model finishes its answer."""

    def __init__(self, checker: SupportChecker, passages: Sequence[Passage], after: int) -> None:
        self.checker = checker
        self.passages = passages
        self.after = after
        self.done = after <= 0
        self.checked = 0  # complete sentences already judged

    def should_stop(self, piece: str, pieces: Sequence[str]) -> bool:
        if self.done or not any(mark in piece for mark in ".!?\n"):
            return False
        text = "".join(pieces)
        spans = sentence_spans(text)
        complete = len(spans) - 1  # the last sentence may still be growing
        if complete <= self.checked:
            return False
        self.checked = complete
        prefix = text[: spans[complete - 1][1]]
        checked = self.checker.check(prefix, self.passages)
        if any(sentence.supported for sentence in checked.sentences):
            self.done = True
            return False
        if len(checked.claims) >= self.after:
            self.done = True
            return True
        return False


def _mostly_unsupported(grounded: GroundedAnswer, min_share: float) -> bool:
    """Whether the checked answer should give way to quotes: it abstained, or fewer than
    `min_share` of its claims are supported by the passages."""
    if grounded.abstained:
        return True
    claims = grounded.claims
    supported = sum(1 for claim in claims if claim.supported)
    return bool(claims) and supported < min_share * len(claims)


def _typed(question: str, grounded: GroundedAnswer) -> GroundedAnswer:
    """The answer, or an abstention when the question asks for a quantity or a time and no
    supported sentence of the answer holds one (it is on topic but does not answer)."""
    kind = asked_kind(question)
    if kind is None or grounded.abstained:
        return grounded
    supported = " ".join(s.text for s in grounded.sentences if s.supported)
    if holds_kind(supported, kind):
        return grounded
    what = "number" if kind == QUANTITY else "date or time"
    abstention = _abstention("answer_type", f"The passages found give no {what} for it.")
    return replace(abstention, raw_answer=grounded.raw_answer)


def _abstention(reason: str, detail: str = "") -> GroundedAnswer:
    message = f"{ABSTAIN_MESSAGE} {detail}" if detail else ABSTAIN_MESSAGE
    return GroundedAnswer(
        answer=message, abstained=True, reason=reason, sentences=(), raw_answer=""
    )


def _not_mentioned(words: Sequence[str]) -> str:
    quoted = [f'"{word}"' for word in words]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"The passages found never mention {listed}."
