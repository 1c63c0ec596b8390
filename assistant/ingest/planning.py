"""Deciding what ingest does with each file, without doing it.

`plan_file` looks at a file and at its stored rows and says what it is: unchanged, skipped and
why, or new/changed with the documents whose content must be chunked and embedded. It writes
nothing and loads no model; `pipeline` applies the plans. `plan_removals` decides which stored
files are gone, once every file of a run was seen.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.index.store import DocumentRow
from assistant.ingest.readers import Document, UnreadableFile, read_documents


@dataclass(frozen=True)
class Unchanged:
    """The file is as stored. `touch` is the (size, mtime) to record when only those changed."""

    path: str
    touch: tuple[int, float] | None = None


@dataclass(frozen=True)
class Skip:
    """The file is not ingested, for `reason`. `forget_stored`: it was ingested before, and as it
    can no longer be read, its stored documents no longer stand for it."""

    path: str
    reason: str
    forget_stored: bool = False


@dataclass(frozen=True)
class Change:
    """A new or changed file: the documents whose content is new (to chunk and embed) and the keys
    of all its documents (stored documents under other keys go). No documents: the same content
    in new bytes (reordered rows, say), so only vanished rows go and the new stat is recorded."""

    path: str
    is_new: bool
    documents: tuple[Document, ...]
    keys: tuple[str, ...]
    file_hash: str
    size: int
    mtime: float


FilePlan = Unchanged | Skip | Change


def plan_file(path: Path, stored: Sequence[DocumentRow], max_file_bytes: int) -> FilePlan:
    """What to do with one file, given its stored documents (none: a new file).

    The decision, and nothing more: the file is read (only when its size or mtime changed) but
    nothing is written and no model is loaded. Unchanged means the same size and mtime, or
    failing that the same SHA-256; a changed file's documents are compared by content hash, so
    only the changed rows of a JSONL corpus are embedded again.
    """
    key = str(path)
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "no longer a regular file")
        if status.st_size > max_file_bytes:
            return Skip(key, f"larger than {max_file_bytes // 1_000_000} MB")
        if stored and all(
            row.size == status.st_size and row.mtime == status.st_mtime for row in stored
        ):
            return Unchanged(key)
        data = _read_regular(path)
    except OSError as error:
        return Skip(key, f"cannot read ({error.strerror})")
    file_hash = hashlib.sha256(data).hexdigest()
    if stored and all(row.file_hash == file_hash for row in stored):
        return Unchanged(key, touch=(status.st_size, status.st_mtime))
    try:
        documents = list(read_documents(path, data, file_hash))
    except UnreadableFile as error:
        # Readable before: its old text no longer stands for the file.
        return Skip(key, str(error), forget_stored=bool(stored))
    old_hashes = {row.key: row.content_hash for row in stored}
    return Change(
        key,
        is_new=not stored,
        documents=tuple(d for d in documents if old_hashes.get(d.key) != d.content_hash),
        keys=tuple(document.key for document in documents),
        file_hash=file_hash,
        size=status.st_size,
        mtime=status.st_mtime,
    )


def plan_removals(
    stored_under_folders: Iterable[Iterable[str]], ingested: set[str], kept: set[str]
) -> list[str]:
    """The stored files to forget once every file was seen: for each folder walked, the files
    stored under it (as the store lists them) that this run neither ingested nor had to keep
    (under a folder it could not list, say), each folder's in order."""
    return [
        stored
        for paths in stored_under_folders
        for stored in sorted(set(paths))
        if stored not in ingested and not _under_any(stored, kept)
    ]


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file. Opened without blocking, so a file swapped for a named pipe
    since the walk fails here instead of waiting for a writer forever."""
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(handle, "rb") as stream:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise OSError(errno.EINVAL, "no longer a regular file")
        return stream.read()


def _under_any(path: str, folders: set[str]) -> bool:
    """Whether `path` is one of `folders` or lies under one."""
    candidate = Path(path)
    return any(str(folder) in folders for folder in (candidate, *candidate.parents))
