"""Sentences and content words: the units grounding checks and extractive quoting picks.

`sentence_spans` is the one sentence splitter. Its default rules split an answer or a passage into
sentences as a reader sees them (bullets, abbreviations, decimal numbers, citation markers and
prose hard-wrapped at a fixed width handled); `plain=True` gives the plainer rules the chunker cuts
source text with (see the function). `content_words` gives a text's lower-cased, stemmed words
without stop words (`terms` holds the stop words and the stemmer), and `key_terms` its names and
numbers, the words a hallucination usually swaps.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from assistant.text.citations import strip_markers
from assistant.text.terms import STOPWORDS, stem

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
# The plain rules: one final mark with its closing quotes/brackets and the whitespace after it,
# or a blank line.
_PLAIN_END = re.compile(r"[.!?][\"'”’)\]]*\s+|\n[ \t]*\n\s*")
_PLAIN_START = "\"'“‘(["  # opening quotes and brackets may begin a sentence


def sentence_spans(text: str, *, plain: bool = False) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of text, without outer spaces.

    The default rules read text as laid out. Each line is split separately (a list item or
    heading is its own sentence, its bullet left out), where a line is what `soft_wraps` leaves
    of it: prose hard-wrapped at a fixed width (reST, Markdown, plain text) is one line per
    paragraph, so a sentence is not cut at its line breaks. A line is cut after ., ! or ? (and
    any closing quotes or citation markers) when whitespace and a non-lower-case character
    follow, except after abbreviations ("e.g.", "Dr.") and initials; decimals ("3.5") never split
    because no space follows the point.

    `plain=True` gives the rules chunking cuts blocks into units with (answer memory and the
    context window's trimming use them too). Line breaks are spaces and a blank line ends a
    sentence. Nothing is left out: the spans and the whitespace between them cover the whole
    text, bullets included, because a chunk's text is rebuilt from these offsets. A cut follows
    one ., ! or ? (and closing quotes or brackets) when whitespace and a capital, a digit or an
    opening quote or bracket follow; abbreviations and citation markers get no special care, and
    a lower-case word after a full stop and a blank line continues the sentence. Those last
    rules are history rather than purpose, but each unit boundary moves chunk overlaps, so the
    default rules would change the chunks of the SQuAD and SciFact eval corpora: switching is a
    re-ingest and an eval rerun, not a refactor.
    """
    spans: list[tuple[int, int]] = []
    for offset, line in [(0, text)] if plain else _unwrapped_lines(text):
        bullet = None if plain else BULLET.match(line)
        position = bullet.end() if bullet else 0
        for match in (_PLAIN_END if plain else _SENTENCE_END).finditer(line):
            if match.end() <= position or not _ends_sentence(line, match, plain):
                continue
            spans.append(_trimmed(line, position, match.end(), offset))
            position = match.end()
        spans.append(_trimmed(line, position, len(line), offset))
    return [(start, end) for start, end in spans if end > start]


def _unwrapped_lines(text: str) -> Iterator[tuple[int, str]]:
    """(offset, line) for each line of text once its soft wraps are spaces."""
    unwrapped = list(text)
    for position in soft_wraps(text):
        unwrapped[position] = " "  # same length: offsets stay those of `text`
    offset = 0
    for line in "".join(unwrapped).split("\n"):
        yield offset, line
        offset += len(line) + 1


def _ends_sentence(line: str, match: re.Match[str], plain: bool) -> bool:
    """Whether a candidate end found by the rules' pattern really ends a sentence."""
    if not plain:
        return not _follows_abbreviation(line, match.start())
    if match.group().startswith("\n"):
        return True  # a blank line
    following = line[match.end() : match.end() + 1]  # empty at the end of the text
    return following != "" and (
        following.isupper() or following.isdigit() or following in _PLAIN_START
    )


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

# The base stop words, but a negation is kept (it changes a claim), and modal verbs and a few
# more words that make no claim of their own are dropped too.
_NEGATIONS = frozenset(["no", "nor", "not"])
_CLAIMLESS_WORDS = "also let may might must one per shall upon via whose within without"
CONTENT_STOPWORDS = (STOPWORDS - _NEGATIONS) | frozenset(_CLAIMLESS_WORDS.split())
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


def content_words(text: str) -> list[str]:
    """The stemmed content words of text in order: lower-cased, stop words dropped, numbers kept.

    Contractions such as "isn't" yield "not", which is kept: a negation changes a claim.
    """
    text = re.sub(r"\b(can|won)['’]t\b", r"\1 not", text.lower()).replace("won not", "will not")
    text = re.sub(r"n['’]t\b", " not", text)
    text = re.sub(r"['’]s\b", "", text)
    return [
        stem(word)
        for word in _WORD.findall(text)
        if word not in CONTENT_STOPWORDS and (len(word) > 1 or word.isdigit())
    ]


def is_claim(text: str) -> bool:
    """Whether the sentence says something checkable: a content word that is not filler."""
    # "not" alone makes no claim either: "I could not find it in the documents."
    return any(word not in FILLER and word != "not" for word in content_words(strip_markers(text)))


FILLER = frozenset(stem(word) for word in _FILLER_WORDS.split())
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
        if word[0].isdigit() or (word[0].isupper() and word.lower() not in CONTENT_STOPWORDS):
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
