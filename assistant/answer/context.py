"""Assemble each turn's prompt inside the model's context window, and show how it was spent.

A prompt holds the system prompt, a running summary of older turns, the latest turns verbatim, the
retrieved passages and the new question. It must leave `answer_reserve` tokens of the window for
the answer, measured with the model's own tokenizer and chat template (both injected, so this
module needs no model). When space runs out, parts are given up in a fixed order: the system
prompt and the question are always kept, then the latest turn, then passages in rank order (the
last one that fits partly is cut at a sentence boundary), then the summary, then older turns, which
the caller folds into the summary (see `assistant.answer.memory`). Every step is checked with the
message-level counter, so the prompt fits the window exactly, never approximately.

Because the passages come after only the system prompt, the latest turn and the question, their
room is known before anything is retrieved (`passage_room`). The caller bounds its search by it
(`most_passages`) and cuts the hits to the ones that may fit (`passages_within`) before embedding
or checking them, so a huge `k` costs no more than the window can hold.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from assistant.answer.memory import Turn as Turn  # re-exported: prompts are built from turns
from assistant.answer.memory import turn_tokens, turns_to_fold
from assistant.errors import ConfigError, InputError
from assistant.index.passage import Passage
from assistant.text.sentences import sentence_spans

TokenCounter = Callable[[str], int]
MessageCounter = Callable[[Sequence[Mapping[str, str]]], int]  # includes chat-template tokens
UserRenderer = Callable[[str, Sequence[Passage]], str]

SUMMARY_HEADING = "Summary of the earlier conversation:"


def format_passage(number: int, passage: Passage) -> str:
    """One numbered block: `[n] (source, heading)` then the text; the model cites it as [n]."""
    label = ", ".join(part for part in (passage.source, passage.heading) if part)
    return f"[{number}] ({label})\n{passage.text}"


def render_user(question: str, passages: Sequence[Passage]) -> str:
    """The default user message: the numbered passages, then the question."""
    blocks = [format_passage(number, passage) for number, passage in enumerate(passages, 1)]
    return "\n\n".join([*blocks, f"Question: {question}"])


@dataclass(frozen=True)
class Budget:
    """How the window was spent, in tokens of the model's tokenizer.

    Each part counts its own text; `overhead` is everything else the model reads (chat-template
    tokens, passage labels, prompt wording), so `total` is exactly what the message counter
    reported for the assembled prompt and never exceeds `available`.
    """

    window: int
    reserved_answer: int
    system: int
    passages: int
    summary: int
    recent: int
    question: int
    overhead: int = 0

    @property
    def total(self) -> int:
        """Prompt tokens used, template overhead included."""
        return (
            self.system + self.passages + self.summary + self.recent + self.question + self.overhead
        )

    @property
    def available(self) -> int:
        """The most the prompt may use: the window minus the answer's reserve."""
        return self.window - self.reserved_answer

    @property
    def free(self) -> int:
        return self.available - self.total

    def rows(self) -> list[tuple[str, int]]:
        """Labelled parts in display order, for a `/budget` table."""
        return [
            ("system", self.system),
            ("summary", self.summary),
            ("recent turns", self.recent),
            ("passages", self.passages),
            ("question", self.question),
            ("template overhead", self.overhead),
            ("total", self.total),
            ("free", self.free),
            ("reserved for answer", self.reserved_answer),
            ("window", self.window),
        ]

    def as_dict(self) -> dict[str, int]:
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return {**fields, "total": self.total, "available": self.available, "free": self.free}


@dataclass(frozen=True)
class Prompt:
    """A prompt ready for the model.

    `passages` are the passages included, in prompt order (passage i is cited as [i]); the last
    may be a trimmed copy. The first `folded_turns` of the given turns did not fit verbatim: the
    caller folds them into the summary (`memory.fold_into_summary`), keeps the rest, and may
    assemble again so that this very prompt already carries the new summary.
    """

    messages: list[dict[str, str]]
    passages: tuple[Passage, ...]
    budget: Budget
    folded_turns: int
    dropped_passages: int = 0  # given passages left out entirely


@dataclass(frozen=True)
class _Draft:
    """The parts chosen so far; rendered to messages for every fit check."""

    system: str
    question: str
    render: UserRenderer
    summary_heading: str
    summary: str = ""
    turns: tuple[Turn, ...] = ()
    passages: tuple[Passage, ...] = ()

    def messages(self) -> list[dict[str, str]]:
        system = self.system
        if self.summary:
            section = f"{self.summary_heading}\n{self.summary}"
            system = f"{system}\n\n{section}" if system else section
        messages = [{"role": "system", "content": system}] if system else []
        for turn in self.turns:
            messages.append({"role": "user", "content": turn.question})
            messages.append({"role": "assistant", "content": turn.answer_without_citations})
        messages.append({"role": "user", "content": self.render(self.question, self.passages)})
        return messages


class ContextWindow:
    """Fits prompts into `context_length - answer_reserve` tokens.

    `history_share` is the fraction of that space the summary and older turns may take before
    older turns fold into the summary. `minimum_passage_tokens` is the smallest piece of a passage
    worth including when it has no sentence boundary that fits.
    """

    def __init__(
        self,
        count_tokens: TokenCounter,
        count_messages: MessageCounter,
        *,
        context_length: int,
        answer_reserve: int,
        history_share: float = 0.25,
        minimum_passage_tokens: int = 24,
        summary_heading: str = SUMMARY_HEADING,
    ) -> None:
        if answer_reserve < 0 or context_length <= answer_reserve:
            raise ConfigError(
                f"the context window ({context_length} tokens) must be larger than the answer "
                f"reserve ({answer_reserve} tokens)"
            )
        if not 0.0 <= history_share <= 1.0:
            raise ConfigError(f"history_share must be between 0 and 1, not {history_share}")
        self.count_tokens = count_tokens
        self.count_messages = count_messages
        self.context_length = context_length
        self.answer_reserve = answer_reserve
        self.history_share = history_share
        self.minimum_passage_tokens = minimum_passage_tokens
        self.summary_heading = summary_heading

    @property
    def available(self) -> int:
        return self.context_length - self.answer_reserve

    @property
    def history_budget(self) -> int:
        """Tokens the summary and recent turns may take before older turns fold."""
        return int(self.history_share * self.available)

    def assemble(
        self,
        *,
        system: str,
        question: str,
        passages: Sequence[Passage],
        summary: str,
        turns: Sequence[Turn],
        render_user: UserRenderer | None = None,
    ) -> Prompt:
        """The prompt for `question`; `passages` best first, `turns` oldest first."""
        draft = self._add_passages(self._start(system, question, turns, render_user), passages)
        draft = self._add_summary(draft, summary.strip())
        if draft.turns:
            share = self.history_budget - self.count_tokens(summary.strip())
            kept = turns[len(turns_to_fold(turns, self.count_tokens, share)) :]
            for turn in reversed(kept[:-1]):
                longer = dataclasses.replace(draft, turns=(turn, *draft.turns))
                if not self._fits(longer):
                    break
                draft = longer
        return Prompt(
            messages=draft.messages(),
            passages=draft.passages,
            budget=self._budget(draft),
            folded_turns=len(turns) - len(draft.turns),
            dropped_passages=len(passages) - len(draft.passages),
        )

    def passage_room(
        self,
        *,
        system: str,
        question: str,
        turns: Sequence[Turn] = (),
        render_user: UserRenderer | None = None,
    ) -> int:
        """The most tokens passages can take in the prompt for `question`: what the window leaves
        after the parts `assemble` keeps before them. Raises as `assemble` does when the question
        alone does not fit."""
        draft = self._start(system, question, turns, render_user)
        return self.available - self.count_messages(draft.messages())

    def most_passages(self, room: int) -> int:
        """How many passages `room` tokens can hold at most: as many whole ones as their
        shortest possible label (`[1] ()`) fits in it, and one more cut short."""
        label = self.count_tokens(format_passage(1, _SMALLEST_PASSAGE))
        return max(0, room) // max(1, label) + 1

    def passages_within(self, passages: Sequence[Passage], room: int) -> list[Passage]:
        """The leading `passages` that `assemble` may include in `room` tokens: those whose
        texts, counted alone, fit, and the first that does not (it may be trimmed to fit).

        A text counted alone costs less than its block in the prompt, whose label and separator
        cost more tokens than any merge at the text's edges saves, so no passage `assemble` would
        include (whole or trimmed) is left out. The uncounted labels add up, so a few more may
        get through (more with long source paths); `assemble` drops them."""
        used = 0
        for count, passage in enumerate(passages, start=1):
            used += self.count_tokens(passage.text)
            if used > room:
                return list(passages[:count])
        return list(passages)

    def _start(
        self,
        system: str,
        question: str,
        turns: Sequence[Turn],
        render_user: UserRenderer | None,
    ) -> _Draft:
        """The parts that come before any passage: the system prompt and the question (or an
        error if they do not fit), and the latest turn if it fits too."""
        if not question.strip():
            raise InputError("The question is empty.")
        draft = _Draft(system, question, render_user or _default_render, self.summary_heading)
        if not self._fits(draft):
            self._raise_too_long(draft)
        if turns and self._fits(latest := dataclasses.replace(draft, turns=(turns[-1],))):
            draft = latest
        return draft

    def _fits(self, draft: _Draft) -> bool:
        return self.count_messages(draft.messages()) <= self.available

    def _raise_too_long(self, draft: _Draft) -> NoReturn:
        room = self.available - self.count_messages(
            dataclasses.replace(draft, question="").messages()
        )
        if room <= 0:
            raise ConfigError(
                f"The system prompt alone fills the model's window ({self.available} tokens after "
                f"reserving {self.answer_reserve} for the answer). Shorten it or raise context_cap."
            )
        tokens = self.count_tokens(draft.question)
        # Counted alone, a question can come out a token shorter than inside its message.
        room = min(room, tokens - 1)
        raise InputError(
            f"Your question is {tokens} tokens; the model's window leaves room for {room}. "
            "Shorten it."
        )

    def _add_passages(self, draft: _Draft, passages: Sequence[Passage]) -> _Draft:
        """Passages in rank order while they fit; the first that does not is trimmed or dropped,
        and so is everything ranked below it."""
        for passage in passages:
            whole = dataclasses.replace(draft, passages=(*draft.passages, passage))
            if not self._fits(whole):
                return self._add_trimmed(draft, passage)
            draft = whole
        return draft

    def _add_trimmed(self, draft: _Draft, passage: Passage) -> _Draft:
        """The longest sentence prefix of `passage` that fits; failing that, a run of at least
        `minimum_passage_tokens` words; failing that, nothing."""
        text = passage.text

        def with_prefix(end: int) -> _Draft:
            shorter = dataclasses.replace(passage, text=text[:end].rstrip())
            return dataclasses.replace(draft, passages=(*draft.passages, shorter))

        sentence_ends = [end for _, end in sentence_spans(text, plain=True)][:-1]
        end = _last_fitting(sentence_ends, lambda end: self._fits(with_prefix(end)))
        if end is None:
            word_ends = [match.end() for match in re.finditer(r"\S+", text)][:-1]
            end = _last_fitting(word_ends, lambda end: self._fits(with_prefix(end)))
            if end is not None and self.count_tokens(text[:end]) < self.minimum_passage_tokens:
                end = None
        return draft if end is None else with_prefix(end)

    def _add_summary(self, draft: _Draft, summary: str) -> _Draft:
        """The summary if it fits, else its latest sentences that do (the newest matter most)."""
        if not summary:
            return draft
        starts = [start for start, _ in sentence_spans(summary, plain=True)]
        starts.reverse()  # shortest tail first, so fitting tails come before the rest
        start = _last_fitting(
            starts,
            lambda start: self._fits(dataclasses.replace(draft, summary=summary[start:])),
        )
        return draft if start is None else dataclasses.replace(draft, summary=summary[start:])

    def _budget(self, draft: _Draft) -> Budget:
        count = self.count_tokens
        parts = {
            "system": count(draft.system),
            "passages": 0,
            "summary": count(draft.summary) if draft.summary else 0,
            "recent": sum(turn_tokens(turn, count) for turn in draft.turns),
            "question": count(draft.question),
        }
        if draft.passages:
            with_passages = count(draft.render(draft.question, draft.passages))
            parts["passages"] = max(0, with_passages - count(draft.render(draft.question, ())))
        total = self.count_messages(draft.messages())
        return Budget(
            window=self.context_length,
            reserved_answer=self.answer_reserve,
            overhead=total - sum(parts.values()),
            **parts,
        )


# The cheapest block a passage can have in the prompt: no source, no heading, no text.
_SMALLEST_PASSAGE = Passage(
    chunk_id=0, text="", source="", start_line=None, end_line=None, page=None, heading="", score=0.0
)


def _default_render(question: str, passages: Sequence[Passage]) -> str:
    return render_user(question, passages)


def _last_fitting(candidates: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """The last candidate for which `fits` holds, assuming it holds for a leading run of them
    (longer text, more tokens); binary search keeps the counter calls logarithmic."""
    low, high = 0, len(candidates)  # candidates[:low] fit, candidates[high:] do not
    while low < high:
        middle = (low + high) // 2
        if fits(candidates[middle]):
            low = middle + 1
        else:
            high = middle
    return candidates[low - 1] if low else None
