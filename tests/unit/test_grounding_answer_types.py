"""Tests for assistant.grounding.answer_types: which questions ask for a quantity or a time, and
whether a
text holds one."""

from __future__ import annotations

import pytest

from assistant.grounding.answer_types import QUANTITY, TIME, asked_kind, holds_kind


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many layers does the model have?", QUANTITY),
        ("How much memory does the cache take?", QUANTITY),
        ("What percentage of Victoria's land is farmed?", QUANTITY),
        ("How long is one term of the president?", QUANTITY),
        ("The survey counted how many birds?", QUANTITY),
        ("When did England declare war on France?", TIME),
        ("In what year did the Wars of Religion start?", TIME),
        ("The district was named in which century?", TIME),
        ("What is the KV cache?", None),
        ("Who wrote Frankenstein?", None),
        ("How does nucleus sampling work?", None),
        ("Where is the Eiffel Tower?", None),
        # a condition, then the real question
        ("When fewer workers are needed, what happens to the job market?", None),
        ("What happens when the cache is full?", None),
    ],
)
def test_asked_kind(question: str, kind: str | None) -> None:
    assert asked_kind(question) == kind


@pytest.mark.parametrize(
    ("text", "kind", "holds"),
    [
        ("The model has 30 layers.", QUANTITY, True),
        ("A president is elected for three years.", QUANTITY, True),
        ("It takes several years to show.", QUANTITY, True),
        ("The cache stores the keys of every layer.", QUANTITY, False),
        ("England declared war on May 18, 1756.", TIME, True),
        ("Mechlin lace developed in the eighteenth century.", TIME, True),
        ("The harvest ends in autumn.", TIME, True),
        ("Huguenot refugees flocked to Shoreditch, London.", TIME, False),
        ("The bridge was named in their honor.", TIME, False),
    ],
)
def test_holds_kind(text: str, kind: str, holds: bool) -> None:
    assert holds_kind(text, kind) is holds
