"""Ingest with the real models: the sample corpus end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

import assistant.ingest.pipeline as ingest_module
from assistant.cli.app import app
from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.ingest.discovery import discover
from tests.conftest import REPOSITORY, SAMPLE_CORPUS


def _count(config: Config, table: str) -> int:
    """Rows of a table so far, read while an ingest may be writing (WAL lets us)."""
    database = config.home / "assistant.db"
    if not database.exists():
        return 0
    try:
        with closing(sqlite3.connect(database, timeout=10)) as connection:
            return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # the tables are not made yet
        return 0


def _load_script(name: str) -> ModuleType:
    path = REPOSITORY / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kill_trial = _load_script("kill_trial")  # its consistency checks, shared with the trial


@pytest.mark.e2e
def test_a_killed_ingest_keeps_what_it_committed_and_resumes(
    config: Config, model_cache: Path, tmp_path: Path
) -> None:
    """SIGKILL `assistant ingest` a few seconds past its first commit interval: what it embedded
    until then is saved, the home is consistent, reading commands work, and the next run
    finishes the folder."""
    folder = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS, folder)
    total = len(discover([folder])[0])
    Embedder.from_config(replace(config, cache_dir=str(model_cache)))  # export before timing
    environment = {
        **os.environ,
        "ASSISTANT_HOME": str(config.home),
        "ASSISTANT_CACHE_DIR": str(model_cache),
    }
    command = [sys.executable, "-m", "assistant", "ingest", str(folder), "--json"]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _count(config, "settings") and process.poll() is None:
            assert time.monotonic() < deadline, "the ingest never loaded its embedder"
            time.sleep(0.1)  # the model is recorded in the store once loaded: embedding starts
        time.sleep(ingest_module.COMMIT_SECONDS + 3)
        killed = process.poll() is None
    finally:
        process.kill()
        process.wait()
    if not killed:
        pytest.skip("this machine ingests the sample corpus too fast to kill the ingest mid-way")

    saved = _count(config, "documents")
    assert 1 <= saved < total  # a kill a few seconds in keeps what was embedded until then
    problems, counts = kill_trial.store_problems(config.home)
    assert problems == [] and counts["documents"] == saved
    assert kill_trial.reopened_index_problems(config.home) == []
    runner = CliRunner()
    listed = runner.invoke(app, ["docs", "--json"], env=environment)
    assert listed.exit_code == 0 and len(json.loads(listed.output)) == saved
    assert runner.invoke(app, ["info", "--json"], env=environment).exit_code == 0

    resumed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["added"] + summary["updated"] + summary["unchanged"] == total
    problems, counts = kill_trial.store_problems(config.home)
    assert problems == [] and counts["index_missing"] == counts["index_stale"] == 0
    assert counts["unfinished_documents"] == 0 and counts["documents"] == total
