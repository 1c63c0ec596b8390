"""The connection to an OpenAI-compatible server, for `openai_engine`: the `openai` client with
bounded retries, what the server states about its context window, and its failures turned into
messages a user can act on.

Connection errors (nothing listening, a reset) are retried `openai_retries` times, waiting
`openai_retry_seconds` and twice as long each time after. A timeout is not retried (the server is
there, only slow), nor is anything the server answered, nor anything once an answer's stream has
started: the engine then ends the answer where it broke off.

The API key is read from `ASSISTANT_OPENAI_API_KEY` in the environment, here alone: it is no
`Config` setting, so it never reaches `Config.as_dict`, a log or `assistant info`, and it is
masked in every message, wherever a server may have echoed it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import openai

from assistant.config import Config
from assistant.config import display_url as config_display_url
from assistant.errors import ConfigError, ModelError
from assistant.models import served_model_name

API_KEY_VARIABLE = "ASSISTANT_OPENAI_API_KEY"
CONNECT_SECONDS = 10.0  # to open a connection; `openai_timeout` is for the server's answer
_T = TypeVar("_T")


class ServerClient:
    """The server of an `openai:NAME` model, as `config` names it."""

    def __init__(self, config: Config, api_key: str | None = None) -> None:
        check_settings(config)
        self._config = config
        self._api_key = os.environ.get(API_KEY_VARIABLE, "") if api_key is None else api_key
        self._client = openai.OpenAI(
            base_url=config.openai_base_url,
            # Servers without keys ignore it; the client insists on one (and would otherwise
            # read OPENAI_API_KEY, a key meant for someone else).
            api_key=self._api_key or "no-key",
            max_retries=0,  # retried here, for connection errors only
            timeout=openai.Timeout(
                config.openai_timeout, connect=min(CONNECT_SECONDS, config.openai_timeout)
            ),
        )
        self.base_url = display_url(config.openai_base_url)
        self.served_model = served_model_name(config.model) or ""

    def chat_stream(self, request: dict[str, Any]) -> Any:
        """The stream of chunks for a chat request (`stream: true`), once the server accepted
        it; `openai`'s errors as raised, for the caller to decide on and `explain`."""
        return self._retrying(lambda: self._client.chat.completions.create(**request))

    def context_window(self) -> int | None:
        """The context window the server states (its smallest figure: vLLM's `max_model_len`,
        llama.cpp's `n_ctx` in `/v1/models` and `/props`), or None if it states none. Raises
        for a server that is down or refuses the key."""
        figures: list[Any] = []
        models = self._get_json("/models")
        if isinstance(models, dict):
            entries = [entry for entry in models.get("data", []) if isinstance(entry, dict)]
            ours = [entry for entry in entries if entry.get("id") == self.served_model]
            for entry in ours or (entries if len(entries) == 1 else []):
                meta: dict[str, Any] = entry["meta"] if isinstance(entry.get("meta"), dict) else {}
                figures += [entry.get("max_model_len"), meta.get("n_ctx")]
        # llama.cpp serves /props beside /v1, not under it.
        props = self._get_json(
            self._config.openai_base_url.rstrip("/").removesuffix("/v1") + "/props"
        )
        if isinstance(props, dict):
            settings = props.get("default_generation_settings")
            figures.append(props.get("n_ctx"))
            if isinstance(settings, dict):
                figures.append(settings.get("n_ctx"))
        stated = [
            figure
            for figure in figures
            if isinstance(figure, int) and not isinstance(figure, bool) and figure > 0
        ]
        return min(stated) if stated else None

    def explain(self, error: openai.APIError) -> ModelError:
        """What went wrong with a request, and what to do about it, in one line."""
        where = f"the model server at {self.base_url}"
        if isinstance(error, openai.APITimeoutError):
            text = (
                f"{where} did not answer within {self._config.openai_timeout:g} s; raise "
                "ASSISTANT_OPENAI_TIMEOUT if it is busy or reads long prompts slowly"
            )
        elif isinstance(error, openai.APIConnectionError):
            attempts = self._config.openai_retries + 1
            text = (
                f"cannot reach {where}: {self.cause(error)} ({attempts} attempt"
                f"{'s' if attempts > 1 else ''}); start the server or set "
                "ASSISTANT_OPENAI_BASE_URL to where it listens"
            )
        elif isinstance(error, openai.APIStatusError) and error.status_code in (401, 403):
            text = (
                f"{where} refused the API key ({error.status_code}): set {API_KEY_VARIABLE} to "
                "the server's key"
                if self._api_key
                else f"{where} wants an API key ({error.status_code}): set {API_KEY_VARIABLE}"
            )
        elif isinstance(error, openai.NotFoundError):
            text = self._not_found(where)
        elif is_context_overflow(error):
            text = (
                f"{where} refused the prompt as too long for its context: {self.cause(error)}; "
                "set ASSISTANT_CONTEXT_CAP to the server's context, or ASSISTANT_TOKENIZER to the "
                "model's tokenizer so prompts are counted exactly"
            )
        elif isinstance(error, openai.APIStatusError):
            text = f"{where} failed ({error.status_code}): {self.cause(error)}"
        else:
            text = f"{where} failed: {self.cause(error)}"
        return ModelError(self._clean(text))

    def cause(self, error: openai.APIError) -> str:
        """The cause in a few words, the key masked: the server's message, or the network's."""
        cause = error.__cause__
        if isinstance(error, openai.APIConnectionError) and cause is not None:
            text = str(cause) or type(cause).__name__
            text = "connection refused, nothing listens there" if "refused" in text else text
        else:
            body = error.body
            message = body.get("message") if isinstance(body, dict) else None
            text = message if isinstance(message, str) else error.message
        return self._clean(" ".join(text.split()))

    def close(self) -> None:
        self._client.close()

    def _get_json(self, path: str) -> Any:
        """A JSON document from the server (a path under the base URL, or a full URL); None
        when the server has no such document."""
        try:
            return self._retrying(lambda: self._client.get(path, cast_to=object))
        except openai.APIStatusError as error:
            if error.status_code in (401, 403):
                raise self.explain(error) from error
            return None  # not this kind of server
        except openai.APIError as error:
            raise self.explain(error) from error

    def _retrying(self, call: Callable[[], _T]) -> _T:
        """`call`, again after a connection error (not a timeout), with doubling waits."""
        attempts = self._config.openai_retries + 1
        for attempt in range(attempts):
            try:
                return call()
            except openai.APITimeoutError:
                raise
            except openai.APIConnectionError:
                if attempt + 1 == attempts:
                    raise
                time.sleep(self._config.openai_retry_seconds * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _not_found(self, where: str) -> str:
        """Why a 404: a model the server does not have, or no OpenAI API at that address."""
        try:
            listing = self._client.get("/models", cast_to=object)
        except openai.APIError:
            listing = None
        names = [
            str(entry.get("id"))
            for entry in (listing.get("data", []) if isinstance(listing, dict) else [])
            if isinstance(entry, dict)
        ]
        if not names:
            return (
                f"{where} has no OpenAI-compatible API (404); ASSISTANT_OPENAI_BASE_URL usually "
                "ends in /v1"
            )
        return (
            f"{where} has no model {self.served_model!r} (404); it serves: {', '.join(names)} "
            "(use --model openai:NAME)"
        )

    def _clean(self, text: str) -> str:
        return text.replace(self._api_key, "***") if len(self._api_key) >= 4 else text


def is_context_overflow(error: openai.APIError) -> bool:
    """A 400 for a prompt too long (llama.cpp: "exceeds the available context size", vLLM:
    "maximum context length", OpenAI: "context_length_exceeded")."""
    return isinstance(error, openai.BadRequestError) and "context" in str(error).lower()


def display_url(url: str) -> str:
    """`url` fit to show: without a password or a query string (either may hold a key)."""
    return urlunsplit((*urlsplit(config_display_url(url))[:3], "", ""))


def check_settings(config: Config) -> None:
    """The engine's settings, checked where they are used (ConfigError)."""
    if not config.openai_base_url.startswith(("http://", "https://")):
        raise ConfigError(
            "openai_base_url (ASSISTANT_OPENAI_BASE_URL) must start with http:// or https://, "
            f"not {display_url(config.openai_base_url)!r}"
        )
    if config.openai_timeout <= 0:
        raise ConfigError("openai_timeout (ASSISTANT_OPENAI_TIMEOUT) must be more than 0 seconds")
    if config.openai_retries < 0 or config.openai_retry_seconds < 0:
        raise ConfigError(
            "openai_retries and openai_retry_seconds (ASSISTANT_OPENAI_RETRIES, "
            "ASSISTANT_OPENAI_RETRY_SECONDS) must be 0 or more"
        )
