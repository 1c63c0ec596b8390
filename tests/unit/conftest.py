"""Unit tests: no language model, seconds each. They may use the small bundled embedder (loaded
once per session by the `embedder` fixture) or the fakes in `tests/fakes.py`."""
