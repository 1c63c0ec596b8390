"""Conversation memory: which older turns to fold, how to summarize them safely, and follow-ups.

A chat keeps its latest turns verbatim and folds older ones into a running summary once they no
longer fit the history's share of the window. The summary comes from an injected summarizer (the
language model with its own prompt), and small models get summaries wrong in recognisable ways:
empty, looping, overlong, or inventing things. So every model summary is checked against the text
it summarizes, and an extractive summary (first sentences of each exchange) replaces it when the
check fails: a summary never carries a word the conversation did not contain.

Retrieval sees one question at a time, so a follow-up such as "how tall is it?" is rewritten into
a standalone query by appending the salient words of the exchange it refers to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from assistant.errors import AssistantError
from assistant.text.citations import remove_markers
from assistant.text.sentences import DEMONSTRATIVES, REFERRING, sentence_spans
from assistant.text.terms import STOPWORDS, stem

SUMMARY_MAX_WORDS = 150
SUMMARY_MIN_WORDS = 4
UNSUPPORTED_TOLERANCE = 0.1  # share of a summary's content words that may be absent from the source

_WORD = re.compile(r"[^\W_](?:[\w.+'’-]*[^\W_])?")
_POSSESSIVE = re.compile(r"['’]s?$")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that name no topic: the base stop words (`text.terms`), plus the first list and minus
# the second, as this module has always counted them. The difference is history rather than
# design, but it decides which questions are follow-ups and which words a rewritten query gets
# (`evals/follow_ups.py` measures both), so aligning the lists is a change to measure.
_FUNCTION_WORDS = (
    STOPWORDS
    | _word_set(
        """also another done either else every many may might much must neither one ones onto
        per shall us via whether whose without yes"""
    )
) - _word_set(
    """above after against because before below during few further herself himself myself nor
    once ours ourselves through until while yours yourself yourselves"""
)
# Words that ask for more without naming a topic ("tell me more", "why?"): never a topic word.
_VAGUE_WORDS = _word_set(
    """tell explain elaborate more detail details example examples mean means meant say please
    thanks thank okay ok really else go describe called call stand known"""
)
# Words a faithful summary may use although the conversation never said them.
_SUMMARY_WORDS = _word_set(
    """user assistant ask asks asked answer answers answered said say says explain explained
    mention mentioned discuss discussed conversation question questions summary topic topics
    earlier previously later noted note described wanted inquired replied stated told talked
    provided gave clarified first next"""
)
_EXPLETIVE_NEXT = _word_set("take takes took possible true necessary")
_CONTINUATIONS = ("what about", "how about", "and ", "also ", "what else", "but ", "then ")
_REFUSALS = ("don't know", "do not know", "not in the passages", "cannot find", "no information")


@dataclass(frozen=True)
class Turn:
    """One exchange of the conversation: the user's question and the assistant's answer."""

    question: str
    answer: str

    @property
    def answer_without_citations(self) -> str:
        """The answer without `[n]` markers, which pointed at that turn's passages, not ours."""
        return remove_markers(self.answer).strip()


def turn_tokens(turn: Turn, count_tokens: Callable[[str], int]) -> int:
    """Tokens a turn occupies in the history (question plus answer as carried forward)."""
    return count_tokens(turn.question) + count_tokens(turn.answer_without_citations)


def turns_to_fold(
    turns: Sequence[Turn], count_tokens: Callable[[str], int], budget: int
) -> tuple[Turn, ...]:
    """The oldest turns that no longer fit `budget` tokens of history, oldest first.

    The newest turns are kept while they fit; the latest turn is never folded here (it outranks
    the history share; only the window itself can push it out).
    """
    used = 0
    kept = 0
    for position, turn in enumerate(reversed(turns)):
        used += turn_tokens(turn, count_tokens)
        if position > 0 and used > budget:
            break
        kept += 1
    return tuple(turns[: len(turns) - kept])


def conversation_text(summary: str, turns: Sequence[Turn]) -> str:
    """The text a summarizer receives: the previous summary, then the folded exchanges."""
    parts = [f"Summary so far: {summary.strip()}"] if summary.strip() else []
    for turn in turns:
        parts.append(f"User: {turn.question.strip()}\nAssistant: {turn.answer_without_citations}")
    return "\n\n".join(parts)


def fold_into_summary(
    summary: str,
    turns: Sequence[Turn],
    summarize: Callable[[str], str] | None,
    *,
    max_words: int = SUMMARY_MAX_WORDS,
    tolerance: float = UNSUPPORTED_TOLERANCE,
) -> str:
    """The running summary after folding `turns` into it.

    Uses the model summary when it passes `summary_problem`, else an extractive summary. A
    summarizer that fails with an `AssistantError` (model trouble) also gets the fallback.
    """
    if not turns:
        return summary
    if summarize is not None:
        source = conversation_text(summary, turns)
        try:
            candidate = summarize(source).strip()
        except AssistantError:
            candidate = ""
        if summary_problem(candidate, source, max_words=max_words, tolerance=tolerance) is None:
            return candidate
    return extractive_summary(summary, turns, max_words=max_words)


def summary_problem(
    candidate: str,
    source: str,
    *,
    max_words: int = SUMMARY_MAX_WORDS,
    tolerance: float = UNSUPPORTED_TOLERANCE,
) -> str | None:
    """Why a model summary of `source` cannot be used, or None when it can."""
    words = candidate.split()
    if not words:
        return "empty"
    if len(words) < SUMMARY_MIN_WORDS:
        return "too short"
    if len(words) > max_words:
        return "too long"
    if _is_repetitive(candidate):
        return "repeated"
    known = {_stem(word) for word in _words(source)}
    content = [
        _stem(word)
        for word in _words(candidate)
        if _POSSESSIVE.sub("", word.lower()) not in _FUNCTION_WORDS | _SUMMARY_WORDS
    ]
    unsupported = [stem for stem in content if stem not in known]
    if content and len(unsupported) / len(content) > tolerance:
        return f"unsupported words: {', '.join(sorted(set(unsupported))[:5])}"
    return None


def extractive_summary(summary: str, turns: Sequence[Turn], *, max_words: int) -> str:
    """Previous summary plus the first sentence of each folded question and answer.

    Over `max_words`, the oldest lines go first: the newest exchanges matter most to what follows.
    """
    lines = [line for line in summary.splitlines() if line.strip()]
    for turn in turns:
        question = _first_sentence(turn.question)
        answer = _first_sentence(turn.answer_without_citations)
        lines.append(f"User: {question} Assistant: {answer}".strip())
    while len(lines) > 1 and sum(len(line.split()) for line in lines) > max_words:
        lines.pop(0)
    if lines and len(lines[0].split()) > max_words:
        lines[0] = " ".join(lines[0].split()[:max_words])
    return "\n".join(lines)


def is_follow_up(question: str) -> bool:
    """Whether a question leans on the conversation for its topic.

    Yes when it opens with a continuation ("what about", "and ..."), names no topic at all ("why?"),
    or names no entity while pointing back with a pronoun, a demonstrative, or "the <thing>".
    """
    text = question.strip().lower()
    if text.startswith(_CONTINUATIONS):
        return True
    tokens = _words(question)
    if not [token for token in tokens if _is_content(token)]:
        return True
    if _has_entity(tokens):
        return False
    lowered = [token.lower() for token in tokens]
    if any(_refers_back(lowered, index) for index in range(len(lowered))):
        return True
    content = [token for token in tokens if _is_content(token)]
    return len(content) <= 2 and "the" in lowered


def rewrite_query(question: str, turns: Sequence[Turn]) -> str:
    """A standalone retrieval query: a follow-up gets the salient words of the previous turn
    appended (the question itself stays first); any other question comes back unchanged."""
    return _standalone(question, turns, depth=0)


def _standalone(question: str, turns: Sequence[Turn], depth: int) -> str:
    if not turns or not is_follow_up(question):
        return question
    previous = turns[-1]
    # A follow-up of a follow-up: its topic is in the exchange before (two levels at most).
    earlier = previous.question
    if depth < 2:
        earlier = _standalone(earlier, turns[:-1], depth + 1)
    seen = {_stem(token) for token in _words(question)}
    terms = _new_terms(_words(earlier), seen, limit=10)
    answer = previous.answer_without_citations
    if not any(refusal in answer.lower() for refusal in _REFUSALS):
        answer_words = _words(_first_sentence(answer))
        ranked = [word for word in answer_words if _is_entity(word)] + answer_words
        terms += _new_terms(ranked, seen, limit=4)
    return f"{question.strip()} {' '.join(terms)}" if terms else question


def _new_terms(tokens: Iterable[str], seen: set[str], *, limit: int) -> list[str]:
    """Content tokens whose stem is not in `seen` (which they join), in order, at most `limit`."""
    terms: list[str] = []
    for token in tokens:
        stem = _stem(token)
        if len(terms) < limit and _is_content(token) and stem not in seen:
            seen.add(stem)
            terms.append(_POSSESSIVE.sub("", token))
    return terms


def _refers_back(lowered: list[str], index: int) -> bool:
    """Whether the word at `index` points outside the question (no antecedent inside it)."""
    word = lowered[index]
    following = lowered[index + 1] if index + 1 < len(lowered) else ""
    before = lowered[:index]
    if word in REFERRING:
        if following == "own" or (word == "it" and following in _EXPLETIVE_NEXT):
            return False
    elif word in DEMONSTRATIVES:
        # "was that format" points back; "blocks that need" is a relative clause.
        if before and before[-1] not in _FUNCTION_WORDS:
            return False
    else:
        return False
    content_before = [token for token in before if _is_content(token)]
    joined = any(token in ("and", "or", "but") for token in before[1:]) and content_before
    return len(content_before) < 4 and not joined


def _has_entity(tokens: Sequence[str]) -> bool:
    """A name, acronym or number: digits, inner capitals, or a capital beyond the first word."""
    first, rest = (tokens[0], tokens[1:]) if tokens else ("", ())
    return _is_entity(first[1:]) or any(_is_entity(token) for token in rest)


def _is_entity(token: str) -> bool:
    return token != "I" and any(c.isupper() or c.isdigit() for c in token)


def _is_content(token: str) -> bool:
    lowered = _POSSESSIVE.sub("", token.lower())
    return lowered not in _FUNCTION_WORDS and lowered not in _VAGUE_WORDS


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _stem(word: str) -> str:
    """The stem of a word as written (lower-cased, possessive dropped) by the plain rules of
    `text.terms.stem`, so "tower"/"towers" and "introduced"/"introduce" match."""
    word = _POSSESSIVE.sub("", word.lower())
    return stem(word, plain=True) if word else word


def _first_sentence(text: str) -> str:
    spans = sentence_spans(text.strip(), plain=True)
    if not spans:
        return ""
    start, end = spans[0]
    return " ".join(text.strip()[start:end].split())


def _is_repetitive(text: str) -> bool:
    """A looping generation: a sentence said twice, or few distinct word triples."""
    sentences = [" ".join(text[a:b].lower().split()) for a, b in sentence_spans(text, plain=True)]
    if len(set(sentences)) < len(sentences):
        return True
    words = [word.lower() for word in text.split()]
    triples = list(zip(words, words[1:], words[2:], strict=False))
    return len(triples) >= 6 and len(set(triples)) / len(triples) < 0.75
