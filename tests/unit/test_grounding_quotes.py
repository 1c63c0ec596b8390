"""Tests for assistant.grounding.quotes: the quotes given when the model's own answer is
unsupported."""

from assistant.grounding.quotes import best_quotes
from tests.fakes import fake_embed, passage

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
    # "This is the origin..." points back: the sentence before it comes along.
    assert quotes[0].text == (
        "I had extensive experience with implementing an interpreted language in the ABC group "
        "at CWI. This is the origin of many Python features, including the use of indentation "
        "for statement grouping and the inclusion of very-high-level data types."
    )


def test_a_second_quote_must_score_close_to_the_best() -> None:
    passages = [
        passage(1, "The KV cache stores keys and values. It grows with the context length."),
        passage(2, "Paris is the capital of France."),
    ]
    quotes = best_quotes("What does the KV cache store?", passages, fake_embed)
    assert [quote.passage for quote in quotes] == [1]
    assert quotes[0].text == "The KV cache stores keys and values."


PHASES = (
    "Prefill processes the whole prompt in one forward pass. It does a great deal of arithmetic "
    "per byte of weights read, so it is compute-bound. Decode generates one token per step."
)


def test_a_sentence_that_points_back_is_quoted_with_the_one_before() -> None:
    quotes = best_quotes("Which phase is compute-bound?", [passage(1, PHASES)], fake_embed)
    assert quotes[0].text == (
        "Prefill processes the whole prompt in one forward pass. It does a great deal of "
        "arithmetic per byte of weights read, so it is compute-bound."
    )
    # The same sentence alone is not quoted again beside the pair.
    assert all("It does" not in quote.text for quote in quotes[1:])


def test_a_sentence_that_stands_alone_is_quoted_alone() -> None:
    quotes = best_quotes("What does decode generate per step?", [passage(1, PHASES)], fake_embed)
    assert quotes[0].text == "Decode generates one token per step."
