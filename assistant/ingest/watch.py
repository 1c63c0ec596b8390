"""Keep the store in step with folders while they change: `assistant ingest --watch`.

`watch(home, paths, stop)` ingests `paths` once, then follows their changes with `watchfiles`
and yields an event for each batch of changes: what changed and what the re-ingest did. It ends,
with the index saved, when `stop` is set (the CLI sets it on Ctrl-C).

Each batch re-ingests the watched paths as a whole with `pipeline.ingest`, rather than only the
paths that changed: a walk that stats every file (no file is read or embedded unless its size or
mtime moved) is what makes a re-ingest match a fresh `assistant ingest` exactly, with
`discovery`'s rules for hidden files, dependency folders, links out of the folders given and
files reached twice, and with removals, renames and whole folders appearing or vanishing. The
events themselves are only filtered, by the same rules, so that a hidden file or an editor's
swap file does not start a walk.

Changes are grouped: a batch is handled once the folders have been quiet for `QUIET_MS`, or
`LONGEST_MS` after its first change while they keep changing (a long copy), so saving a file,
which editors do in several writes, is re-ingested once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import watchfiles

from assistant.index.home import Home
from assistant.ingest.discovery import SKIPPED_FOLDERS
from assistant.ingest.pipeline import IngestProgress, IngestSummary, ingest
from assistant.ingest.readers import detect_format

QUIET_MS = 500  # a batch is handled once nothing changed for this long
LONGEST_MS = 5_000  # ... or this long after its first change, however busy the folders

ChangeKind = Literal["added", "modified", "deleted"]


@dataclass(frozen=True)
class Watching:
    """The first pass is done; changes under `roots` are followed from now on."""

    roots: list[str]


@dataclass(frozen=True)
class Reingested:
    """One batch of changes and what re-ingesting did about it."""

    changes: list[tuple[ChangeKind, str]]  # sorted by path
    summary: IngestSummary


@dataclass(frozen=True)
class WatchStopped:
    """Watching ended (the index is saved); the totals of the batches since the first pass."""

    batches: int
    added: int
    updated: int
    removed: int
    chunks_added: int
    chunks_removed: int


WatchEvent = IngestProgress | IngestSummary | Watching | Reingested | WatchStopped


@dataclass
class _Totals:
    batches: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0

    def count(self, summary: IngestSummary) -> None:
        self.batches += 1
        self.added += len(summary.added)
        self.updated += len(summary.updated)
        self.removed += len(summary.removed)
        self.chunks_added += summary.chunks_added
        self.chunks_removed += summary.chunks_removed

    def stopped(self) -> WatchStopped:
        return WatchStopped(
            self.batches,
            self.added,
            self.updated,
            self.removed,
            self.chunks_added,
            self.chunks_removed,
        )


def watch(
    home: Home,
    paths: Sequence[Path],
    stop: threading.Event | None = None,
    quiet_ms: int = QUIET_MS,
    longest_ms: int = LONGEST_MS,
) -> Iterator[WatchEvent]:
    """Ingest `paths`, then re-ingest them on every batch of relevant changes until `stop` is
    set. Yields the first pass's progress and summary, `Watching`, a `Reingested` per batch,
    and `WatchStopped` last. Stopping during an ingest ends it at its next commit."""
    stop = stop or threading.Event()
    roots = [Path(os.path.realpath(path)) for path in paths]
    totals = _Totals()
    try:
        yield from _follow(home, paths, roots, stop, totals, quiet_ms, longest_ms)
    finally:
        home.save_index()
    yield totals.stopped()


def _follow(
    home: Home,
    paths: Sequence[Path],
    roots: list[Path],
    stop: threading.Event,
    totals: _Totals,
    quiet_ms: int,
    longest_ms: int,
) -> Iterator[WatchEvent]:
    """The first pass, then a re-ingest per batch of changes, until `stop` is set."""
    first = None
    for event in _ingest_until_stopped(home, paths, stop):
        yield event
        if isinstance(event, IngestSummary):
            first = event
    if first is None or stop.is_set():
        return
    yield Watching([str(root) for root in roots])
    for changes in watchfiles.watch(
        *roots,
        watch_filter=lambda change, path: _relevant(change, path, roots),
        debounce=longest_ms,
        step=quiet_ms,
        stop_event=stop,
        rust_timeout=1_000,
        raise_interrupt=True,
    ):
        listed = sorted(((_KINDS[change], path) for change, path in changes), key=_by_path)
        summary = None
        for event in _ingest_until_stopped(home, paths, stop):
            if isinstance(event, IngestSummary):
                summary = event
        if summary is None:  # stopped half-way: what was committed stays
            return
        totals.count(summary)
        yield Reingested(listed, summary)


def _ingest_until_stopped(
    home: Home, paths: Sequence[Path], stop: threading.Event
) -> Iterator[IngestProgress | IngestSummary]:
    """`ingest` over the paths that still exist, closed at its next event once `stop` is set
    (ingest yields between commits, so what it committed stays). Documents under a watched path
    that is gone are forgotten, as a fresh ingest would of a file gone from a folder."""
    present = [path for path in paths if path.exists()]
    gone = [
        row.path
        for path in paths
        if not path.exists()
        for row in home.store.documents(os.path.realpath(path))
    ]
    if gone:
        home.forget(gone)
    if not present:
        summary = IngestSummary(removed=gone)
        yield summary
        return
    # A generator (so it can be closed at once rather than when collected).
    events = cast(Generator[IngestProgress | IngestSummary], ingest(home, present))
    try:
        for event in events:
            if isinstance(event, IngestSummary):
                event.removed.extend(gone)
            yield event
            if stop.is_set():
                return
    finally:
        events.close()


_KINDS: dict[watchfiles.Change, ChangeKind] = {
    watchfiles.Change.added: "added",
    watchfiles.Change.modified: "modified",
    watchfiles.Change.deleted: "deleted",
}


def _by_path(change: tuple[ChangeKind, str]) -> str:
    return change[1]


def _relevant(change: watchfiles.Change, path: str, roots: Sequence[Path]) -> bool:
    """Whether a change could alter what an ingest of `roots` stores, by `discovery`'s rules:
    nothing inside a hidden or dependency folder, no hidden file, no file of a type we do not
    read (unless it was deleted or is a folder: what it held may have been ingested)."""
    for root in roots:
        try:
            parts = Path(path).relative_to(root).parts
        except ValueError:
            continue
        if any(part.startswith(".") or part in SKIPPED_FOLDERS for part in parts):
            return False
        break
    if change == watchfiles.Change.deleted or os.path.isdir(path):
        return True
    return detect_format(Path(path)) is not None
