"""Checking answers against passages: per-sentence support and answerability (the trained
verifier, or the older hand-set rules), citations, extractive quotes and answer types (does a
text hold the quantity or date a question asks for).

Stage 5: may import `llm`, `index` (passages), `embed`, `text` and the root modules.
"""
