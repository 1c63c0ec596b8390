"""assistant: a local, private, retrieval-augmented assistant that cites its sources.

The library is usable without the CLI: `Config.load()` builds the settings, `Home(config)` opens
the state, `ingest(home, paths)` indexes documents and `home.retriever().search(query, k)` finds
passages.
"""

from assistant.config import Config
from assistant.errors import AssistantError

__version__ = "0.1.0"

__all__ = ["AssistantError", "Config", "__version__"]
