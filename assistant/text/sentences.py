"""Sentences and content words: the units grounding checks and extractive quoting picks.

`sentence_spans` splits an answer or a passage into sentences (bullets, abbreviations, decimal
numbers and prose hard-wrapped at a fixed width handled), `content_words` gives a text's
lower-cased, lightly stemmed words without stop words, and `key_terms` its names and numbers, the
words a hallucination usually swaps.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from assistant.text.citations import strip_markers

# --------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------

BULLET = re.compile(r"^[ \t]*(?:[-*•+–]|#{1,6}|\(?\d{1,3}[.)]|\(?[a-z][.)])[ \t]+")
# Sentence-final punctuation, then closing quotes/brackets and citation markers that belong to it.
_SENTENCE_END = re.compile(
    r"[.!?]+(?:[\"'”’)\]]|[ \t]*\[[ \t]*\d[\d \t,;\-–—]*\])*(?=[ \t]+[^\sa-z]|[ \t]*$)"
    r"|(?<=[a-z]{2}[.!?])(?=[A-Z][a-z])"  # "century.First": a missing space after a sentence
)
_ABBREVIATION_WORDS = """e.g i.e cf vs al approx fig figs no nos mr mrs ms dr prof sr jr st mt
    inc ltd co corp dept est jan feb mar apr jun jul aug sep sept oct nov dec"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of text, without list bullets or outer spaces.

    Each line is split separately (a list item or heading is its own sentence), where a line is
    what `soft_wraps` leaves of it: prose hard-wrapped at a fixed width (reST, Markdown, plain
    text) is one line per paragraph, so a sentence is not cut at its line breaks. A line is cut
    after ., ! or ? (and any closing quotes or citation markers) when whitespace and a
    non-lower-case character follow, except after abbreviations ("e.g.", "Dr.") and initials;
    decimals ("3.5") never split because no space follows the point.
    """
    unwrapped = list(text)
    for position in soft_wraps(text):
        unwrapped[position] = " "  # same length: offsets stay those of `text`
    spans: list[tuple[int, int]] = []
    line_start = 0
    for line in "".join(unwrapped).split("\n"):
        bullet = BULLET.match(line)
        position = bullet.end() if bullet else 0
        for match in _SENTENCE_END.finditer(line):
            if match.end() <= position or _follows_abbreviation(line, match.start()):
                continue
            spans.append(_trimmed(line, position, match.end(), line_start))
            position = match.end()
        spans.append(_trimmed(line, position, len(line), line_start))
        line_start += len(line) + 1
    return [(start, end) for start, end in spans if end > start]


# A line at least this long (stripped) that runs on into a next line was wrapped at a fixed width;
# a shorter one is a heading, a label or a list entry of its own.
WRAPPED_LINE_MIN = 40
_HARD_END = (":", "|")  # "as follows:" introduces a list or code; "|" ends a table row


def soft_wraps(text: str) -> list[int]:
    """Offsets of the line breaks in text that only wrap a paragraph: the line before is long
    prose (at least `WRAPPED_LINE_MIN` characters, not a heading, not ending in a colon or a
    table bar) and the line after continues it (not blank, not a list item or table row)."""
    wraps = []
    offset = 0
    lines = text.split("\n")
    for line, following in itertools.pairwise(lines):
        offset += len(line)
        before, after = line.strip(), following.strip()
        if (
            len(before) >= WRAPPED_LINE_MIN
            and after
            and not before.startswith("#")
            and not before.endswith(_HARD_END)
            and not after.startswith("|")
            and not BULLET.match(following)
        ):
            wraps.append(offset)
        offset += 1
    return wraps


def _follows_abbreviation(line: str, period: int) -> bool:
    if line[period] != "." or line[period : period + 2] == "..":
        return False
    word = re.search(r"[\w.]*$", line[:period])
    token = word.group(0).lower() if word else ""
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()) or "." in token


def _trimmed(line: str, start: int, end: int, offset: int) -> tuple[int, int]:
    while start < end and line[start].isspace():
        start += 1
    while end > start and line[end - 1].isspace():
        end -= 1
    return offset + start, offset + end


def split_sentences(text: str) -> list[str]:
    """The sentences of text (see `sentence_spans`)."""
    return [text[start:end] for start, end in sentence_spans(text)]


# --------------------------------------------------------------------------------------------
# Content words
# --------------------------------------------------------------------------------------------

_STOPWORD_WORDS = """a about above after again against all also am an and any are as at be because
    been before being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in into is it
    its itself just let me more most my myself of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves may might must shall
    upon whose within without via per one"""
_STOPWORDS = frozenset(_STOPWORD_WORDS.split())
# Words that make no claim on their own: a sentence made only of these (and stop words) is a
# fragment such as "Sure, here is the answer based on the provided passages:". Sentence openers
# are here too, so a capitalised "However" is not taken for a name.
_FILLER_WORDS = """sure yes okay ok certainly absolutely course thanks thank hello hi hope help
    helps great answer question following note based context passage passages document documents
    provided information according sorry unfortunately unable find found know however additionally
    moreover furthermore therefore thus hence overall finally firstly secondly thirdly
    lastly also instead meanwhile similarly specifically generally typically usually often
    indeed actually basically essentially"""
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")


def _stem(word: str) -> str:
    """A light suffix stripper: enough to match "caches", "cached" and "caching"."""
    if word[0].isdigit():
        return word.replace(",", "")
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """The stemmed content words of text in order: lower-cased, stop words dropped, numbers kept.

    Contractions such as "isn't" yield "not", which is kept: a negation changes a claim.
    """
    text = re.sub(r"\b(can|won)['’]t\b", r"\1 not", text.lower()).replace("won not", "will not")
    text = re.sub(r"n['’]t\b", " not", text)
    text = re.sub(r"['’]s\b", "", text)
    return [
        _stem(word)
        for word in _WORD.findall(text)
        if word not in _STOPWORDS and (len(word) > 1 or word.isdigit())
    ]


def is_claim(text: str) -> bool:
    """Whether the sentence says something checkable: a content word that is not filler."""
    # "not" alone makes no claim either: "I could not find it in the documents."
    return any(word not in FILLER and word != "not" for word in content_words(strip_markers(text)))


def lexical_support(claim_words: Sequence[str], evidence_words: frozenset[str]) -> float:
    """Share of the distinct claim words found in the evidence; 0.0 for a claim without words."""
    distinct = set(claim_words)
    if not distinct:
        return 0.0
    return len(distinct & evidence_words) / len(distinct)


FILLER = frozenset(_stem(word) for word in _FILLER_WORDS.split())
# Words that point back to something named earlier: "It does...", "was that format".
REFERRING = frozenset(
    ["it", "its", "they", "them", "their", "theirs", "he", "him", "his", "she", "her", "hers"]
)
DEMONSTRATIVES = frozenset(["this", "that", "these", "those"])


def key_terms(text: str) -> frozenset[str]:
    """The stemmed names, acronyms and numbers of a sentence: capitalised content words (filler
    such as "However" or "Additionally" excluded) and numbers.

    A hallucinated claim usually keeps the topic and swaps exactly these, so one that is missing
    from the evidence costs more than an ordinary word (see `key_term_penalty`).
    """
    terms = set()
    for word in _WORD.findall(strip_markers(text)):
        if word[0].isdigit() or (word[0].isupper() and word.lower() not in _STOPWORDS):
            terms.update(content_words(word.lower()))
    return frozenset(terms - FILLER)


def question_terms(question: str) -> dict[str, str]:
    """The key terms of a question (see `key_terms`), each with the word it came from, in order.

    A capital at the start of a question says nothing ("Name a model...", "Pollution of water
    ..."), so the first word counts only as an acronym or a number.
    """
    terms: dict[str, str] = {}
    position = 0
    for token in strip_markers(question).split():
        # The word as written, for messages: "NF4", "SmolLM2-1.7B", "LangChain" (of "LangChain's").
        written = re.sub(r"['’]s$", "", token.strip(".,;:!?\"'“”‘’()[]{}"))
        for word in _WORD.findall(token):
            position += 1
            if position == 1 and not (word[0].isdigit() or (len(word) > 1 and word.isupper())):
                continue
            for term in sorted(key_terms(word)):
                terms.setdefault(term, written)
    return terms
