"""Tests for assistant.extractive: the quotes given when the model's own answer is unsupported."""

from assistant.extractive import best_quotes
from tests.test_grounding import fake_embed, passage

# As reST and plain-text documents come: prose wrapped at a fixed width, indented block quotes.
WRAPPED = (
    "Here's a very brief summary of what started it all, written by Guido van\n"
    "Rossum:\n"
    "\n"
    "I had extensive experience with implementing an interpreted language in the\n"
    "   ABC group at CWI.  This is the origin of many Python features, including the\n"
    "   use of indentation for statement grouping and the inclusion of\n"
    "   very-high-level data types."
)


def test_quotes_are_whole_sentences_of_wrapped_prose() -> None:
    quotes = best_quotes(
        "Where does the use of indentation for statement grouping come from?",
        [passage(1, WRAPPED)],
        fake_embed,
    )
    assert quotes[0].passage == 1
    assert quotes[0].text == (
        "This is the origin of many Python features, including the use of indentation for "
        "statement grouping and the inclusion of very-high-level data types."
    )


def test_a_second_quote_must_score_close_to_the_best() -> None:
    passages = [
        passage(1, "The KV cache stores keys and values. It grows with the context length."),
        passage(2, "Paris is the capital of France."),
    ]
    quotes = best_quotes("What does the KV cache store?", passages, fake_embed)
    assert [quote.passage for quote in quotes] == [1]
    assert quotes[0].text == "The KV cache stores keys and values."
