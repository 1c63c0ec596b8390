"""Answer one question from the documents: retrieve, build the prompt, stream, check citations.

`Answerer.ask` is a generator: first a `Retrieved` event (the passages found), then the answer's
text pieces as the model produces them (plain `str`), then one `Answer` with the checked result.
The tiny default model cannot be trusted to cite, so the answer that counts is the checked one:
every sentence is matched against the passages, citations are chosen by the system, and the
assistant abstains when retrieval is weak or a name or number of the question is in none of the
passages (both before generating anything), when nothing the model said is supported by the
passages, or when the question asks for a quantity or a time and the answer holds none
(`answer_types`); `GroundingReason` names why. An answer that a model server broke off halfway
is checked as far as it came, and marked `incomplete` with the reason.

`ask` runs in three steps, one method each: before generating (`_retrieve`, then
`_abstention_before_generating`), generating (`_generate`: the stream, stopped by the give-up
rule), and after (`_check_generated`: the support check, quotes, the answer type check).

The work is bounded by the context window first: `k` is cut to the passages the prompt could hold
before retrieval, and the hits to the ones that may fit before any is embedded or checked, so a
huge `k` costs no more than the window allows. The answer says when `k` was cut.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from assistant.answer.context import Budget, ContextWindow, Prompt, format_passage
from assistant.answer.memory import Turn, rewrite_query
from assistant.errors import InputError
from assistant.grounding.answer_types import QUANTITY, asked_kind, holds_kind
from assistant.grounding.checker import (
    ABSTAIN_MESSAGE,
    GroundedAnswer,
    GroundingReason,
    SentenceCheck,
    SupportChecker,
)
from assistant.grounding.quotes import best_quotes
from assistant.index.home import Home
from assistant.index.passage import Passage
from assistant.index.scope import Scope
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
    scope: tuple[str, ...] = ()  # the paths searched under (`Scope`); empty: every document


@dataclass(frozen=True)
class Timings:
    """How long one answer took, in the unit each name ends with (`tokens` counts); None when
    not measured: an answer that abstained before generating has only `retrieval_ms` and
    `total_s`."""

    retrieval_ms: float | None = None
    ttft_ms: float | None = None  # from the question to the first piece of text
    gave_up: bool = False  # generation was stopped: nothing the model said was supported
    incomplete: bool = False  # the model server broke off the answer: only part of it came
    generation_s: float | None = None
    tokens: int | None = None  # generated
    tokens_per_s: float | None = None
    total_s: float | None = None

    def items(self) -> list[tuple[str, float]]:
        """The measured values by name, in this order, as `--json` reports them: numbers only
        (`gave_up` and `incomplete` are 1.0 when true and left out otherwise)."""
        values = ((item.name, getattr(self, item.name)) for item in fields(self))
        # `is`, not `==`: 0 tokens and 0.0 seconds are measured values (and 0 == False).
        return [
            (name, float(value))
            for name, value in values
            if value is not None and value is not False
        ]

    def as_dict(self) -> dict[str, float]:
        """The measured values (`items`), rounded to 3 decimals."""
        return {name: round(value, 3) for name, value in self.items()}


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
    timings: Timings = field(default_factory=Timings)
    k_requested: int = 0  # the passages asked for
    # The passages retrieved and checked: as many, or fewer when the context window cannot hold
    # them (the prompt may hold fewer still: `passages`).
    k_used: int = 0
    scope: tuple[str, ...] = ()  # the paths the passages were searched under; empty: everywhere
    # Why the model's answer ended early (`incomplete`); None when it came whole.
    interruption: str | None = None

    @property
    def text(self) -> str:
        return self.grounded.answer

    @property
    def incomplete(self) -> bool:
        """The model server broke off the answer: what arrived was checked, the rest never came."""
        return self.timings.incomplete

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
        """The `assistant ask --json` object (`incomplete` and `interruption` only when the
        model server broke off the answer)."""
        cut = {"incomplete": True, "interruption": self.interruption} if self.incomplete else {}
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
            "timings": self.timings.as_dict(),
            "budget": self.budget.as_dict() if self.budget is not None else None,
            "k_requested": self.k_requested,
            "k_used": self.k_used,
            "scope": list(self.scope),
            "model": self.model,
            **cut,
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
            verifier=config.verifier,
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
        scope: Scope | None = None,
    ) -> Generator[AnswerEvent, None, None]:
        """Retrieve, stream and check one answer (see the module docstring for the events);
        with a `scope`, from the documents under its paths only."""
        question = " ".join(question.split())
        if not question:
            raise InputError("the question is empty")
        started = time.perf_counter()
        search = self._retrieve(question, turns, k, scope)
        yield search.event
        # Before generating: abstain when the passages cannot answer.
        early = self._abstention_before_generating(question, search)
        if early is not None:
            timings = Timings(retrieval_ms=search.milliseconds, total_s=_seconds_since(started))
            yield self._answer(question, search, early, timings)
            return
        # Generating: stream the model's answer, stopping once it has drifted from the passages.
        prompt = self.build_prompt(question, search.passages, turns, summary)
        generation = yield from self._generate(prompt, started)
        # After: check it, sentence by sentence, against the passages it was given.
        grounded = self._check_generated(question, prompt.passages, generation.text)
        timings = replace(
            generation.timings,
            retrieval_ms=search.milliseconds,
            total_s=_seconds_since(started),
        )
        yield self._answer(question, search, grounded, timings, prompt, generation.interruption)

    def _retrieve(
        self, question: str, turns: Sequence[Turn], k: int | None, scope: Scope | None = None
    ) -> _Search:
        """The passages for the question, as many as asked for or as the prompt could hold."""
        query = rewrite_query(question, turns) if self.config.rewrite_follow_ups else question
        requested = k or self.config.top_k
        room = self.window.passage_room(
            system=load_prompt("system"),
            question=question,
            turns=turns,
            render_user=render_user_message,
        )
        searched = min(requested, self.window.most_passages(room))
        result = self.retriever.search(query, searched, scope=scope)
        passages = tuple(self.window.passages_within(result.passages, room))
        # Cut by the window: hits left out, or a capped search that found all it was allowed.
        cut = len(passages) < len(result.passages) or len(result.passages) == searched < requested
        used = len(passages) if cut else requested
        paths = scope.paths if scope is not None else ()
        return _Search(query, passages, result.milliseconds, requested, used, paths)

    def _abstention_before_generating(
        self, question: str, search: _Search
    ) -> GroundedAnswer | None:
        """An abstention when no passage was found or the passages are too far from the query
        (`WEAK_RETRIEVAL`), or, if so configured, a name or number of the question is in none of
        them (`MISSING_TERMS`); None to go on and generate."""
        passages = search.passages
        missing = self.checker.missing_terms(question, passages) if passages else []
        # Either way, say which words of the question the passages never mention.
        detail = _not_mentioned(missing) if missing else ""
        if not passages or self.checker.evidence_is_weak(search.query, passages):
            return _abstention(GroundingReason.WEAK_RETRIEVAL, detail)
        if missing and self.config.require_question_terms:
            return _abstention(GroundingReason.MISSING_TERMS, detail)
        return None

    def _generate(self, prompt: Prompt, started: float) -> Generator[str, None, _Generation]:
        """Stream the model's answer to the prompt, piece by piece, until it ends or the give-up
        rule (`_GiveUpWatch`) stops it; return the whole text and its timings (the time to the
        first piece counts from `started`, when the question came in), and why it ended early
        when a model server broke it off (the text that came is checked as any other)."""
        limit = min(self.config.max_new_tokens, self.config.answer_reserve)
        pieces: list[str] = []
        first_piece_ms: float | None = None
        gave_up = False
        generation_started = time.perf_counter()
        stream = self.language_model.stream(prompt.messages, max_new_tokens=limit)
        watch = _GiveUpWatch(self.checker, prompt.passages, self.config.give_up_after)
        try:
            for piece in stream:
                if not pieces:
                    first_piece_ms = _seconds_since(started) * 1000
                pieces.append(piece)
                yield piece
                if watch.should_stop(piece, pieces):
                    gave_up = True
                    break
        finally:
            stream.close()
        stats = self.language_model.last_stats
        interruption = None
        if stats is not None and stats.stopped == "incomplete":
            interruption = stats.interruption or "the stream ended before the answer did"
        timings = Timings(
            ttft_ms=first_piece_ms,
            gave_up=gave_up,
            incomplete=interruption is not None,
            generation_s=_seconds_since(generation_started),
            tokens=stats.new_tokens if stats else 0,
            tokens_per_s=stats.tokens_per_s if stats else 0.0,
        )
        return _Generation("".join(pieces), timings, interruption)

    def _check_generated(
        self, question: str, passages: Sequence[Passage], text: str
    ) -> GroundedAnswer:
        """The model's answer checked against the passages (the system cites; unsupported
        sentences are flagged or dropped), then, if so configured, replaced by quotes of the
        passages when mostly unsupported (with the trained verifier, quotes it finds answer the
        question), and an abstention when it lacks the quantity or time
        the question asks for (`ANSWER_TYPE`)."""
        # The trained verifier judges answerability here, after the stream, so that the time to
        # the first piece does not grow; the rules judged the evidence before generating.
        asked = question if self.checker.verifier is not None else None
        grounded = self.checker.check(
            text, passages, unsupported=self.config.unsupported, question=asked
        )
        unanswered = grounded.reason is GroundingReason.UNANSWERED  # quotes would not answer
        if (
            self.config.extractive_fallback
            and not unanswered
            and _mostly_unsupported(grounded, self.config.min_supported_share)
        ):
            grounded = self._quote(question, passages, grounded)
        if self.config.require_answer_type:
            grounded = _typed(question, grounded)
        return grounded

    def _answer(
        self,
        question: str,
        search: _Search,
        grounded: GroundedAnswer,
        timings: Timings,
        prompt: Prompt | None = None,
        interruption: str | None = None,
    ) -> Answer:
        """The final event; without a prompt (abstained before generating), the passages are the
        ones retrieved."""
        return Answer(
            question,
            search.query,
            grounded,
            prompt.passages if prompt is not None else search.passages,
            self.language_model.name,
            budget=prompt.budget if prompt is not None else None,
            folded_turns=prompt.folded_turns if prompt is not None else 0,
            timings=timings,
            k_requested=search.requested,
            k_used=search.used,
            scope=search.scope,
            interruption=interruption,
        )

    def _quote(
        self, question: str, passages: Sequence[Passage], rejected: GroundedAnswer
    ) -> GroundedAnswer:
        """The best passage sentences, quoted and cited, if they answer well enough (and, with
        the trained verifier, if it finds that they answer the question); else the checked
        answer as it was (an abstention, or a partly supported answer, flagged)."""
        quotes = best_quotes(question, passages, self.checker.embed)
        if not quotes or quotes[0].score < self.config.min_quote_score:
            return rejected
        if not self.checker.quotes_answer(question, [quote.text for quote in quotes]):
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
            reason=GroundingReason.EXTRACTIVE,
            sentences=sentences,
            raw_answer=rejected.raw_answer,
        )


@dataclass(frozen=True)
class _Search:
    """What retrieval found for one question, and how many passages it was allowed."""

    query: str
    passages: tuple[Passage, ...]
    milliseconds: float
    requested: int  # the passages asked for (`Answer.k_requested`)
    used: int  # the passages retrieved: as many, or fewer when the window cut them (`k_used`)
    scope: tuple[str, ...] = ()  # the paths searched under (`Answer.scope`)

    @property
    def event(self) -> Retrieved:
        return Retrieved(self.query, self.passages, self.milliseconds, self.scope)


@dataclass(frozen=True)
class _Generation:
    """The model's whole answer, the timings of generating it, and why it ended early if a model
    server broke it off."""

    text: str
    timings: Timings
    interruption: str | None = None


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
    abstention = _abstention(
        GroundingReason.ANSWER_TYPE, f"The passages found give no {what} for it."
    )
    return replace(abstention, raw_answer=grounded.raw_answer)


def _abstention(reason: GroundingReason, detail: str = "") -> GroundedAnswer:
    message = f"{ABSTAIN_MESSAGE} {detail}" if detail else ABSTAIN_MESSAGE
    return GroundedAnswer(
        answer=message, abstained=True, reason=reason, sentences=(), raw_answer=""
    )


def _not_mentioned(words: Sequence[str]) -> str:
    quoted = [f'"{word}"' for word in words]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"The passages found never mention {listed}."


def _seconds_since(moment: float) -> float:
    return time.perf_counter() - moment
