"""The home folder through the CLI: a read-only home can be read, a file is not a home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli.app import app


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cache.md").write_text("# Cache\n\nThe KV cache stores keys and values.\n")
    return folder


def without_write_privilege(folder: Path) -> list[str]:
    """A command prefix under which file modes stop writes, or skip saying why there is none.

    Root writes through any mode; dropping its capability to override file modes (setpriv)
    makes a read-only folder read-only for it too.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file modes would not stop writes")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')"],
        capture_output=True,
    )
    if probe.returncode == 0:
        (folder / "probe").unlink()
        pytest.skip("root keeps writing through file modes here (setpriv could not drop that)")
    return prefix


@pytest.fixture
def read_only_home(tmp_path: Path, docs: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    result = CliRunner().invoke(app, ["ingest", str(docs)], env={"ASSISTANT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    entries = [path for path in home.iterdir() if path.is_file()]
    for path in entries:
        path.chmod(0o444)
    home.chmod(0o555)
    try:
        yield home
    finally:
        home.chmod(0o755)
        for path in entries:
            path.chmod(0o644)


def test_a_read_only_home_can_be_read_and_says_it_cannot_be_written(
    read_only_home: Path, docs: Path
) -> None:
    prefix = without_write_privilege(read_only_home)
    environment = {**os.environ, "ASSISTANT_HOME": str(read_only_home), "COLUMNS": "200"}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = [*prefix, sys.executable, "-m", "assistant", *arguments]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)

    before = sorted(path.name for path in read_only_home.iterdir())
    result = run("docs", "--json")
    assert result.returncode == 0, result.stderr
    assert [row["title"] for row in json.loads(result.stdout)] == ["Cache"]

    result = run("info", "--json")
    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)
    assert details["writable"] is False and details["chunks"] == 1

    result = run("search", "what does the cache store", "--json", "-k", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["source"].endswith("cache.md")

    result = run("sessions", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stderr

    for command in (["ingest", str(docs)], ["forget", str(docs)]):
        result = run(*command)
        assert result.returncode == 1, result.stderr
        assert "is not writable" in result.stderr and "Traceback" not in result.stderr
    assert sorted(path.name for path in read_only_home.iterdir()) == before


def test_a_home_that_is_a_file_is_one_clear_error(tmp_path: Path, docs: Path) -> None:
    file = tmp_path / "home.txt"
    file.write_text("not a folder\n")
    runner = CliRunner()
    for command in (["ingest", str(docs)], ["docs"], ["info"], ["ask", "What is cached?"]):
        result = runner.invoke(app, [*command, "--home", str(file)], env={"COLUMNS": "200"})
        assert result.exit_code == 1, (command, result.output)
        assert "is a file, not a folder" in result.output and "Traceback" not in result.output
