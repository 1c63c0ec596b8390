"""assistant: a local, private, retrieval-augmented assistant that cites its sources.

The library is usable without the CLI: `Config.load()` builds the settings, `Home(config)` opens
the state, `ingest(home, paths)` indexes documents and `home.retriever().search(query, k)` finds
passages.
"""

import os

# torch's OpenMP workers spin while waiting by default; on a busy machine with few cores that
# made decoding 4x slower (measured: 1.8 vs 7.4 tok/s). Set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from assistant.config import Config
from assistant.errors import AssistantError

__version__ = "0.1.0"

__all__ = ["AssistantError", "Config", "__version__"]
