"""The HTTP server (`assistant serve`): an OpenAI-compatible API over the user's documents.

Stage 9 (top, beside `cli`): may import every stage but `cli`; only `cli` imports it.
"""
