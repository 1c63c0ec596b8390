"""The words written around a checked answer wherever it is shown: the mark on an unsupported
sentence, the note above quotes, the headings of its sources.

The terminal (`cli.render`) and the server's chat messages (`server.messages`) both write them from
here, so an answer reads the same in both, and the server can take its own marks off the earlier
answers a client sends back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the checker (and numpy) load with the answer pipeline, not with the CLI
    from assistant.grounding.checker import SentenceCheck

UNSUPPORTED_MARK = " (not found in your documents)"
EXTRACTIVE_NOTE = "Quoted from your documents (most of the model's own answer was not supported):"
SOURCES_HEADING = "Sources:"
CLOSEST_HEADING = "Closest passages (they do not answer it):"


def flagged(sentence: SentenceCheck) -> bool:
    """Whether a shown sentence carries `UNSUPPORTED_MARK`: a claim no passage supports."""
    return not sentence.supported and sentence.is_claim
