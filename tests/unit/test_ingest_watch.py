"""`ingest.watch` with real file events: a folder watched in a thread, changed by the test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assistant.index.home import Home
from assistant.ingest.pipeline import IngestSummary
from assistant.ingest.watch import Reingested, WatchEvent, Watching, WatchStopped, watch

WAIT_SECONDS = 30.0  # the machine may be busy; a change usually shows within a second or two


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class _Watcher:
    """`watch` running in a thread, its events collected."""

    def __init__(self, home: Home, folder: Path) -> None:
        self.events: list[WatchEvent] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(home, folder), daemon=True)

    def _run(self, home: Home, folder: Path) -> None:
        try:
            for event in watch(home, [folder], self.stop, quiet_ms=200, longest_ms=2_000):
                self.events.append(event)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error

    def batches(self) -> list[Reingested]:
        return [event for event in self.events if isinstance(event, Reingested)]


@pytest.fixture
def watched(home: Home, tmp_path: Path) -> Iterator[tuple[_Watcher, Path, Callable[[], set[str]]]]:
    folder = Path(os.path.realpath(tmp_path / "docs"))
    folder.mkdir()
    (folder / "a.md").write_text("# Alpha\n\nThe alpha note is about caches.\n")
    watcher = _Watcher(home, folder)
    reader = Home(home.config)  # another connection, as another process would read

    def stored() -> set[str]:
        return {Path(row.path).name for row in reader.store.documents()}

    watcher.thread.start()
    _wait_for(lambda: any(isinstance(e, Watching) for e in watcher.events), "the first pass")
    yield watcher, folder, stored
    watcher.stop.set()
    watcher.thread.join(WAIT_SECONDS)
    reader.close()


def test_the_store_follows_added_modified_and_deleted_files(watched) -> None:  # type: ignore[no-untyped-def]
    watcher, folder, stored = watched
    first = next(e for e in watcher.events if isinstance(e, IngestSummary))
    assert [Path(p).name for p in first.added] == ["a.md"] and stored() == {"a.md"}

    (folder / "b.md").write_text("# Beta\n\nThe beta note is about sampling.\n")
    _wait_for(lambda: stored() == {"a.md", "b.md"}, "b.md to be ingested")

    (folder / "a.md").write_text("# Alpha\n\nThe alpha note now is about attention.\n")
    _wait_for(
        lambda: any(Path(p).name == "a.md" for b in watcher.batches() for p in b.summary.updated),
        "a.md to be ingested again",
    )

    sub = folder / "sub"
    sub.mkdir()
    (sub / "c.txt").write_text("A note in a new folder.\n")
    _wait_for(lambda: "c.txt" in stored(), "a new folder's file to be ingested")

    (folder / "b.md").unlink()
    _wait_for(lambda: stored() == {"a.md", "c.txt"}, "b.md to be forgotten")

    watcher.stop.set()
    watcher.thread.join(WAIT_SECONDS)
    assert not watcher.thread.is_alive() and watcher.error is None
    last = watcher.events[-1]
    assert isinstance(last, WatchStopped)
    assert last.added == 2 and last.updated >= 1 and last.removed == 1
    assert last.batches == len(watcher.batches())
    kinds = {(kind, Path(path).name) for b in watcher.batches() for kind, path in b.changes}
    assert ("deleted", "b.md") in kinds and ("added", "b.md") in kinds
    assert watcher.batches()[0].summary.unchanged  # a.md was not read again for b.md


def test_files_discovery_passes_over_start_no_reingest(watched) -> None:  # type: ignore[no-untyped-def]
    watcher, folder, stored = watched
    (folder / ".hidden.md").write_text("# Hidden\n\nNot to be read.\n")
    (folder / "node_modules").mkdir()
    (folder / "node_modules" / "readme.md").write_text("A dependency's readme.\n")
    (folder / "image.bin").write_bytes(b"\x00\x01\x02")
    time.sleep(1.5)  # longer than the quiet period: a batch would have started
    (folder / "d.md").write_text("# Delta\n\nA real change.\n")
    # The batch is reported after its commit: wait for the report too, not only the store.
    _wait_for(lambda: "d.md" in stored() and bool(watcher.batches()), "d.md to be ingested")
    changed = {Path(path).name for b in watcher.batches() for _, path in b.changes}
    assert changed == {"d.md"}, watcher.batches()
    assert stored() == {"a.md", "d.md"}


def test_a_removed_folder_is_forgotten_and_a_renamed_file_moves(watched) -> None:  # type: ignore[no-untyped-def]
    watcher, folder, stored = watched
    sub = folder / "sub"
    sub.mkdir()
    (sub / "c.md").write_text("# Gamma\n\nIn a folder.\n")
    (sub / "e.md").write_text("# Epsilon\n\nIn a folder too.\n")
    _wait_for(lambda: stored() == {"a.md", "c.md", "e.md"}, "the folder's files")
    shutil.rmtree(sub)
    (folder / "a.md").rename(folder / "renamed.md")
    _wait_for(lambda: stored() == {"renamed.md"}, "the folder forgotten, the rename followed")
    assert watcher.error is None


def test_ingest_watch_through_the_command_line(tmp_path: Path, model_cache: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Alpha\n\nThe first note.\n")
    home = tmp_path / "home"
    environment = os.environ | {
        "ASSISTANT_HOME": str(home),
        "ASSISTANT_CACHE_DIR": str(model_cache),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    }
    command = [sys.executable, "-m", "assistant"]
    watcher = subprocess.Popen(
        [*command, "ingest", "--watch", str(folder)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(watcher.stdout or []), daemon=True)
    reader.start()

    def documents() -> set[str]:
        shown = subprocess.run(
            [*command, "docs", "--json"], env=environment, capture_output=True, text=True
        )
        return {Path(row["path"]).name for row in json.loads(shown.stdout or "[]")}

    try:
        # The first pass loads the embedder (its export is made once per test session).
        _wait_for(lambda: any("watching" in line for line in lines), "the first pass", 300)
        assert any(line.startswith("added 1") for line in lines)
        (folder / "b.md").write_text("# Beta\n\nThe second note.\n")
        _wait_for(lambda: documents() == {"a.md", "b.md"}, "b.md in `assistant docs`")
        watcher.send_signal(signal.SIGINT)
        watcher.wait(WAIT_SECONDS)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    reader.join(WAIT_SECONDS)
    assert watcher.returncode == 0, watcher.stderr.read() if watcher.stderr else ""
    assert lines[-1].startswith("stopped watching: 1 change(s) handled, added 1")
    assert "the index is saved" in lines[-1]
    assert any("b.md: added 1" in line for line in lines)
