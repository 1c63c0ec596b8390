"""Extractive answers: the passage sentences that best answer a question, quoted and cited.

The default language model is tiny (135M parameters): given good passages it still often answers
from its own memory or says nothing useful, and the checker then rejects every sentence. When
retrieval is strong but nothing the model said is supported, the assistant quotes the sentences of
the passages that best match the question instead of abstaining: a quote is grounded by
construction, and its citation points at exactly the passage it came from. Grounded is not
answering, though: the closest sentences are on topic even when the passages do not hold the
answer, so with the trained verifier the pipeline shows quotes only when the verifier finds that
they answer the question (`SupportChecker.quotes_answer`).

A sentence's score mixes its embedding similarity to the question with the share of the
question's content words it contains (the same two signals the checker uses). A chosen sentence
that opens by pointing back ("It does a great deal of arithmetic per byte...") is quoted together
with the sentence before it, which says what "it" is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.grounding.checker import Embed
from assistant.index.passage import Passage
from assistant.text.sentences import (
    DEMONSTRATIVES,
    REFERRING,
    content_words,
    is_claim,
    split_sentences,
)

LEXICAL_WEIGHT = 0.3
MAX_SENTENCES = 2
SECOND_SENTENCE_MARGIN = 0.08  # a second sentence must score within this of the best
# A quoted sentence opening with one of these is quoted with the sentence before it.
_REFERENCES = REFERRING | DEMONSTRATIVES | {"such"}


@dataclass(frozen=True)
class Quote:
    text: str
    passage: int  # 1-based number of the passage it comes from
    score: float


def best_quotes(
    question: str, passages: Sequence[Passage], embed: Embed, limit: int = MAX_SENTENCES
) -> list[Quote]:
    """Up to `limit` sentences of `passages` that best answer `question`, best first."""
    candidates: list[tuple[int, str]] = []
    context: dict[tuple[int, str], str] = {}  # the sentence before one that points back
    for number, passage in enumerate(passages, start=1):
        sentences = [" ".join(sentence.split()) for sentence in split_sentences(passage.text)]
        for position, sentence in enumerate(sentences):
            if len(sentence) >= 20 and is_claim(sentence):
                candidates.append((number, sentence))
                previous = sentences[position - 1] if position else ""
                if _opens_with_reference(sentence) and is_claim(previous):
                    context[(number, sentence)] = previous
    if not candidates:
        return []
    vectors = np.asarray(embed([question, *(sentence for _, sentence in candidates)]))
    semantic = vectors[1:] @ vectors[0]
    asked = set(content_words(question))
    quotes = []
    for (number, sentence), similarity in zip(candidates, semantic, strict=True):
        words = set(content_words(sentence))
        lexical = len(asked & words) / len(asked) if asked else 0.0
        score = (1 - LEXICAL_WEIGHT) * float(similarity) + LEXICAL_WEIGHT * lexical
        quotes.append(Quote(sentence, number, score))
    quotes.sort(key=lambda quote: -quote.score)
    chosen = [quotes[0]]
    for quote in quotes[1:]:
        if len(chosen) >= limit or quote.score < quotes[0].score - SECOND_SENTENCE_MARGIN:
            break
        if quote.text not in (c.text for c in chosen):
            chosen.append(quote)
    # A chosen sentence that points back is quoted with the sentence it points to (unless that
    # one is quoted already).
    quoted = {c.text for c in chosen}
    return [
        Quote(f"{before} {c.text}", c.passage, c.score)
        if (before := context.get((c.passage, c.text))) and before not in quoted
        else c
        for c in chosen
    ]


def _opens_with_reference(sentence: str) -> bool:
    """Whether the sentence starts by pointing back ("It does...", "Its file format..."): quoted
    alone it would not say what it is about."""
    first = sentence.split(maxsplit=1)[0].strip("\"'“‘(").lower() if sentence.strip() else ""
    return first in _REFERENCES
