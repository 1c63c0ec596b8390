"""Where `assistant serve` listens and the limits it keeps, checked before anything is loaded.

The server answers from the user's private documents, so it listens on the loopback address unless
told otherwise, and any other address needs an API key: documents reachable from the network must
not be reachable by anyone on it. The key never appears in a repr, a log line or an error message.
These settings are not part of `Config` because `Config` is shown whole by `assistant info`, and a
key must not be.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from assistant.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
# Not 8000 (vLLM), 8080 (llama.cpp, Open WebUI), 11434 (Ollama) or 1234 (LM Studio): the
# engines a user may run beside it.
DEFAULT_PORT = 8765
# One model answers one request at a time; this many more may wait for it. Beyond that a request
# gets 503 at once rather than waiting minutes behind a queue it cannot see.
DEFAULT_QUEUE_LIMIT = 16
# A long conversation with every earlier answer is a few hundred KB at most.
DEFAULT_MAX_REQUEST_BYTES = 1_000_000


@dataclass(frozen=True)
class ServerSettings:
    """How one server runs. Build it with the defaults or the CLI's flags; `check()` it."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = field(default=None, repr=False)  # None: no key asked for
    queue_limit: int = DEFAULT_QUEUE_LIMIT  # requests that may wait while one is answered
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES

    def check(self) -> None:
        """Refuse settings that would expose the documents or cannot work."""
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("the API key is empty; give a real one or none")
        if not is_loopback(self.host) and self.api_key is None:
            raise ConfigError(
                f"listening on {self.host} lets other machines read your documents; give an "
                "API key with --api-key (or ASSISTANT_API_KEY), or keep the default 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"the port must be between 0 and 65535, not {self.port}")
        if self.queue_limit < 0:
            raise ConfigError("the queue limit must be 0 (no request waits) or more")
        if self.max_request_bytes < 1024:
            raise ConfigError("the request size limit must be at least 1024 bytes")

    @property
    def url(self) -> str:
        """The API's base URL, as a client on this machine would write it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (`localhost`, 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any address
