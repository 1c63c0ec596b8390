"""Where the server may listen: the loopback address freely, anything else only with a key."""

from __future__ import annotations

import pytest

from assistant.errors import ConfigError
from assistant.server.settings import ServerSettings, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("localhost", True), ("::1", True),
     ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.168.1.4", False),
     ("my-laptop.local", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_default_listens_on_loopback_without_a_key() -> None:
    settings = ServerSettings()
    settings.check()
    assert settings.url == "http://127.0.0.1:8765/v1"


def test_another_host_needs_a_key() -> None:
    with pytest.raises(ConfigError, match="--api-key"):
        ServerSettings(host="0.0.0.0").check()
    ServerSettings(host="0.0.0.0", api_key="k3y").check()
    assert ServerSettings(host="::", port=9000, api_key="k").url == "http://[::]:9000/v1"


def test_the_key_is_never_shown() -> None:
    settings = ServerSettings(host="0.0.0.0", api_key="very-secret")
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings)


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (ServerSettings(api_key="  "), "key is empty"),
        (ServerSettings(port=70000), "port"),
        (ServerSettings(queue_limit=-1), "queue limit"),
        (ServerSettings(max_request_bytes=10), "size limit"),
    ],
)
def test_settings_that_cannot_work_are_refused(settings: ServerSettings, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        settings.check()
