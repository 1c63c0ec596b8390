"""What kind of answer a question asks for, and whether a text holds one.

Two kinds are recognized, where the test is reliable: a quantity ("How many...", "How much...",
"What percentage...", "How long...") and a time ("When...", "In what year...", "Which century...").
An answer to such a question that holds no number (or no time expression) does not answer it,
however on-topic its sentences are: the assistant abstains instead (answer.py). On SQuAD 2.0, whose
unanswerable questions keep the paragraph's names and change what is asked, the answers this
rejects were unanswerable 3 times of 3, and no answerable question was lost (evals/README.md).
The word lists are deliberately narrow on the question side ("When ..., what happens" is a
condition, not a time question) and broad enough on the answer side ("several years", "in the
eighteenth century") that a real answer is not rejected.
"""

from __future__ import annotations

import re

QUANTITY = "quantity"
TIME = "time"

_QUANTITY_QUESTION = re.compile(
    r"\bhow (many|much)\b|^(how (long|old|far|large|big|tall|high|often|wide|deep|heavy|fast))\b"
    r"|^(what|which) (percentage|percent|number|amount|proportion|fraction)\b",
    re.IGNORECASE,
)
_TIME_QUESTION = re.compile(
    r"^when\b|\b(what|which) (year|century|decade|date|month|day|time period|era)\b",
    re.IGNORECASE,
)
# "When less workers are required, what happens to ...": the clause sets a condition, and the
# question is the one after the comma.
_LATER_QUESTION = re.compile(r",\s*(what|who|whom|whose|which|how|why|where)\b", re.IGNORECASE)

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    "hundred|hundreds|thousand|thousands|million|millions|billion|billions|trillion|dozen|dozens|"
    "half|quarter|twice|thrice|several|few"
)
_QUANTITY = re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.IGNORECASE)
_TIME_WORDS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "spring|summer|autumn|winter|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    "century|centuries|decade|decades|era|dynasty|reign|today|yesterday|tomorrow|morning|evening|"
    "night|noon|midnight|ago|recently|annually|yearly|monthly|weekly|daily"
)
_TIME = re.compile(rf"\d|\b({_TIME_WORDS})\b", re.IGNORECASE)


def asked_kind(question: str) -> str | None:
    """QUANTITY or TIME when the question asks for one, else None."""
    text = " ".join(question.split())
    if _LATER_QUESTION.search(text):
        return None
    if _QUANTITY_QUESTION.search(text):
        return QUANTITY
    if _TIME_QUESTION.search(text):
        return TIME
    return None


def holds_kind(text: str, kind: str) -> bool:
    """Whether `text` holds something of `kind`: a number in digits or words for QUANTITY; for
    TIME digits (a year, a date), a month, season, weekday, century or other period, or a word
    like "ago" or "yesterday"."""
    pattern = _QUANTITY if kind == QUANTITY else _TIME
    return pattern.search(text) is not None
