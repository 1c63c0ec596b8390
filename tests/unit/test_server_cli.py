"""`assistant serve` refuses what it cannot serve safely before loading anything: exit codes and
messages, run in-process with typer's runner (the server itself: test_server_app.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from assistant.cli.app import app
from assistant.index.home import Home
from assistant.ingest.pipeline import ingest


def _serve(tmp_path: Path, *arguments: str, **variables: str) -> tuple[int, str]:
    environment = {"ASSISTANT_HOME": str(tmp_path / "home"), "COLUMNS": "200", **variables}
    result = CliRunner().invoke(app, ["serve", *arguments], env=environment)
    return result.exit_code, result.output


def test_another_host_without_a_key_is_refused(tmp_path: Path) -> None:
    code, output = _serve(tmp_path, "--host", "0.0.0.0")
    assert code == 1
    assert "lets other machines read your documents" in output and "--api-key" in output


def test_the_key_may_come_from_the_environment_and_is_never_printed(tmp_path: Path) -> None:
    code, output = _serve(tmp_path, "--host", "0.0.0.0", ASSISTANT_API_KEY="hunter2-key")
    assert code == 1 and "Nothing is ingested" in output  # past the key check: the home is empty
    assert "hunter2-key" not in output


def test_a_port_in_use_is_said_before_the_model_loads(tmp_path: Path, home: Home) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cache.md").write_text("# Cache\n\nThe KV cache stores keys and values.\n")
    for _ in ingest(home, [folder]):
        pass
    home.close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = _serve(tmp_path, "--port", str(port), ASSISTANT_MODEL="no/such-model")
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in output
