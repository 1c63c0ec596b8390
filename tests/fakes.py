"""Small deterministic fakes shared by the tests: a scripted chat model and a bag-of-words embedder.

Fakes of the outside world (a model's text, an embedding), never of our own modules: the code
under test runs for real on top of them.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Generator, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from assistant.index.passage import Passage
from assistant.llm.base import GenerationStats

DIMENSIONS = 512
FAKE_STOPWORD_TEXT = "a an and the of is it in to who what how does has"
FAKE_STOPWORDS = frozenset(FAKE_STOPWORD_TEXT.split())


def fake_embed(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    """Hashed bag of lower-cased words, L2-normalised: similar texts share words."""
    rows = np.zeros((len(texts), DIMENSIONS))
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if word not in FAKE_STOPWORDS:
                rows[row, zlib.crc32(word.encode()) % DIMENSIONS] += 1.0
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1.0, norms)


def passage(number: int, text: str) -> Passage:
    return Passage(number, text, f"notes/{number}.md", 1, 3, None, "", 0.5, number)


class ScriptedModel:
    """A chat model whose answer is fixed; `taken` counts the words streamed so far."""

    name = "scripted"

    def __init__(self, text: str, context_length: int = 4096) -> None:
        self.context_length = context_length
        self.words = re.findall(r"\S+\s*", text)
        self.taken = 0
        self.last_stats: GenerationStats | None = None

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_message_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        return sum(len(message["content"].split()) + 4 for message in messages)

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> Generator[str, None, None]:
        def pieces() -> Generator[str, None, None]:
            for word in self.words[:max_new_tokens]:
                self.taken += 1
                yield word

        return pieces()

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> str:
        return "".join(self.stream(messages, max_new_tokens=max_new_tokens))
