"""Words as the stages compare them: the one stop-word list and the one stemmer.

`STOPWORDS` is the base list of English function words. The lexical query (`index.store`) drops
exactly these; the other users state how their list differs, next to the code that uses it
(`sentences.CONTENT_STOPWORDS` for grounding, `answer.memory` for follow-ups and summaries), so a
change here changes them all at once.

`stem` is the light suffix stripper every Python-side comparison of words uses. BM25 does not use
it: SQLite stems inside FTS5 (see `stem`).
"""

from __future__ import annotations

# Articles, pronouns, auxiliaries, prepositions and conjunctions: too common to tell texts apart.
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me
more most my myself no nor not of off on once only or other our ours ourselves out over own same
she should so some such than that the their theirs them themselves then there these they this
those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def stem(word: str, *, plain: bool = False) -> str:
    """A light suffix stripper for a lower-case word: enough to match "caches", "cached" and
    "caching". A number comes back without its thousands commas ("1,000" is "1000").

    Plural -s, -ies and -sses, then -ing or -ed, then a final -e and a doubled final consonant
    go; nothing else. It is not SQLite's Porter stemmer, on purpose. The lexical index
    (`tokenize='porter unicode61'` in `index.schema`) stems its own words and the quoted words
    of a query inside FTS5, and this function never meets those stems. Porter's stemmer is
    built for recall in ranking and merges words a claim must keep apart ("general", "generous"
    and "generalization" are one stem, as are "universe" and "university"); here a stem decides
    whether a passage supports a sentence or a summary repeats a conversation, so the stemmer
    merges only inflections of one word. unicode61 also drops accents and splits "1,000" in two,
    and this function keeps both.

    `plain=True` gives the plainer rules answer memory has always matched words with: a number
    is stripped like a word ("1520s" is "1520"), -ed goes only from words of six letters or more
    ("aimed" stays), and a doubled final consonant stays ("stopp" of "stopped"). History rather
    than purpose, but the default rules would change a few follow-up queries and summary
    verdicts, so dropping the switch is a change to measure, not a refactor.
    """
    if word[0].isdigit() and not plain:
        return word.replace(",", "")
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses") and not plain:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    shortest = 6 if plain else 5  # letters a word needs to lose -ed; -ing needs six either way
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) >= max(shortest, len(suffix) + 3):
            word = word[: -len(suffix)]
            break
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "lsz" and not plain:
        word = word[:-1]
    return word
