"""assistant: a local, private, retrieval-augmented assistant that cites its sources.

The library is usable without the CLI: `Config.load()` builds the settings, `Home(config)` opens
the state, `ingest(home, paths)` indexes documents and `home.retriever().search(query, k)` finds
passages.
"""

import os

# OpenMP workers (torch's, and llama.cpp's inside xllamacpp) spin while they wait for work. When
# the cores are shared (another program, an index build), a spinning worker that loses its core
# stalls every parallel region, and decoding and the prompt's pass slow down by an order of
# magnitude; passive waiting avoids that cliff (evals/README.md, "OpenMP wait policy"). Each
# OpenMP runtime reads the policy once, when it loads, so it is set here and only here: the
# package's __init__ runs before any of its modules, hence before the embedder or the torch engine
# imports torch and before xllamacpp loads. An explicit OMP_WAIT_POLICY wins; a program that
# imported torch before this package keeps torch's own policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from assistant.config import Config
from assistant.errors import AssistantError

__version__ = "0.1.0"

__all__ = ["AssistantError", "Config", "__version__"]
