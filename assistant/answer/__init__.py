"""One grounded answer: the context window (system prompt, passages, summarized history counted in
the model's tokens), conversation memory (follow-ups, summaries), the answer pipeline that
retrieves, generates, checks and abstains, and the words shown around a checked answer.

Stage 6: may import every stage below (`grounding`, `llm`, `ingest`, `index`, `embed`, `text`).
"""
