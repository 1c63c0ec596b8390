"""Ingest folders and files: read, chunk, embed and store them, incrementally and resumably.

`ingest(home, paths)` is a generator of progress events ending with an `IngestSummary`, so the CLI
can draw a progress bar without this module knowing about terminals.

- Unchanged files (same size and mtime, or failing that the same SHA-256) are skipped without
  being read or embedded; the embedder is not even loaded when nothing changed.
- A changed file's documents are replaced in one transaction; for a JSONL corpus only the rows
  whose content changed are re-embedded.
- Re-ingesting a folder removes the documents whose files are gone from it.
- Chunks from many files are embedded together in large batches; each file is committed on its
  own, and the vector index is saved every `index_save_seconds`. A kill loses at most the files
  not yet committed, and the next run picks them up (the index is reconciled on open).
- Every file we do not ingest is reported with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.chunking import chunk_document
from assistant.embedding import passage_text
from assistant.errors import InputError
from assistant.home import Home
from assistant.readers import Document, UnreadableFile, detect_format, read_documents
from assistant.store import DocumentRow, NewChunk, NewDocument

# Folders that hold build output or dependencies, never a user's documents.
SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "site-packages", "venv"})
FLUSH_CHUNKS = 256  # embed once this many chunks are waiting


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class IngestSummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds > 0 else 0.0

    def skip_reasons(self) -> Counter[str]:
        return Counter(item.reason for item in self.skipped)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "removed": len(self.removed),
            "skipped": len(self.skipped),
            "chunks_added": self.chunks_added,
            "chunks_removed": self.chunks_removed,
            "seconds": round(self.seconds, 3),
            "chunks_per_second": round(self.chunks_per_second, 2),
            "files": {
                "added": self.added,
                "updated": self.updated,
                "removed": self.removed,
                "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            },
        }


@dataclass(frozen=True)
class IngestProgress:
    files_done: int
    files_total: int
    chunks_done: int
    path: str


@dataclass
class _PendingFile:
    """Documents of one file waiting to be embedded; a big file is split into several groups."""

    path: str
    is_new: bool
    documents: list[tuple[NewDocument, list[str]]]  # document (chunks without vectors) + texts
    keep_keys: list[str]  # the file's other documents, which this group's commit must keep
    last: bool = True  # the file's last group: counting it as added/updated happens here


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[Path], list[Skipped]]:
    """Files to read, folders walked (for removals), and what was skipped while walking."""
    files: list[Path] = []
    folders: list[Path] = []
    skipped: list[Skipped] = []
    for given in paths:
        if not given.exists():
            raise InputError(f"no such file or folder: {given}")
        path = given.resolve()
        if path.is_file():
            if detect_format(path) is None:
                skipped.append(Skipped(str(path), _unsupported(path)))
            else:
                files.append(path)
            continue
        folders.append(path)
        visited: set[tuple[int, int]] = set()
        for folder, subfolders, names in os.walk(path, followlinks=True, onerror=None):
            status = os.stat(folder)
            if (status.st_dev, status.st_ino) in visited:
                skipped.append(Skipped(folder, "symbolic link loop"))
                subfolders[:] = []
                continue
            visited.add((status.st_dev, status.st_ino))
            for name in sorted(subfolders):
                if name.startswith(".") or name in SKIPPED_FOLDERS:
                    reason = "hidden folder" if name.startswith(".") else "dependency folder"
                    skipped.append(Skipped(os.path.join(folder, name), reason))
            subfolders[:] = sorted(
                name
                for name in subfolders
                if not name.startswith(".") and name not in SKIPPED_FOLDERS
            )
            for name in sorted(names):
                file_path = Path(folder) / name
                if name.startswith("."):
                    skipped.append(Skipped(str(file_path), "hidden file"))
                elif detect_format(file_path) is None:
                    skipped.append(Skipped(str(file_path), _unsupported(file_path)))
                elif not file_path.is_file():
                    skipped.append(Skipped(str(file_path), "not a regular file"))
                else:
                    files.append(file_path)
    unique = list(dict.fromkeys(files))
    return unique, folders, skipped


def _unsupported(path: Path) -> str:
    return f"unsupported type ({path.suffix.lower() or 'no extension'})"


def ingest(home: Home, paths: Sequence[Path]) -> Iterator[IngestProgress | IngestSummary]:
    """Bring the store in step with `paths`; yields progress, then the summary."""
    started = time.perf_counter()
    files, folders, skipped = discover(paths)
    summary = IngestSummary(skipped=skipped)
    known: dict[str, list[DocumentRow]] = {}
    for row in home.store.documents():
        known.setdefault(row.path, []).append(row)
    writer = _Writer(home, summary, len(files))

    for number, path in enumerate(files, start=1):
        key = str(path)
        yield IngestProgress(number - 1, len(files), writer.chunks_done, key)
        groups = _changes(home, path, known.get(key, []), summary)
        for group in groups:
            writer.pending.append(group)
            writer.pending_chunks += sum(len(texts) for _, texts in group.documents)
            if writer.pending_chunks >= FLUSH_CHUNKS:
                yield from writer.flush()
    yield from writer.flush()

    seen = {str(path) for path in files} | {item.path for item in summary.skipped}
    vanished = [
        stored
        for folder in folders
        for stored in sorted({row.path for row in home.store.documents(str(folder))})
        if stored not in seen
    ]
    if vanished:
        removed_ids = home.store.forget_paths(vanished)
        home.index.remove(removed_ids)
        summary.chunks_removed += len(removed_ids)
        summary.removed.extend(vanished)
    home.save_index()
    summary.seconds = time.perf_counter() - started
    yield summary


class _Writer:
    """Embeds waiting groups together, commits each, and keeps the vector index in step."""

    def __init__(self, home: Home, summary: IngestSummary, files_total: int) -> None:
        self.home = home
        self.summary = summary
        self.files_total = files_total
        self.pending: list[_PendingFile] = []
        self.pending_chunks = 0
        self.chunks_done = 0
        self.last_save = time.monotonic()

    def flush(self) -> Iterator[IngestProgress]:
        if not self.pending:
            return
        texts = [text for item in self.pending for _, texts in item.documents for text in texts]
        vectors = self.home.embedder.embed(texts)
        offset = 0
        index = self.home.index
        for item in self.pending:
            documents: list[NewDocument] = []
            for document, document_texts in item.documents:
                documents.append(
                    _with_vectors(document, vectors[offset : offset + len(document_texts)])
                )
                offset += len(document_texts)
            removed, added = self.home.store.replace_file(item.path, documents, item.keep_keys)
            index.remove(removed)
            if added:
                index.add(np.asarray(added, dtype=np.int64), _stack(documents))
            self.summary.chunks_added += len(added)
            self.summary.chunks_removed += len(removed)
            self.chunks_done += len(added)
            if item.last:
                (self.summary.added if item.is_new else self.summary.updated).append(item.path)
            done = len(self.summary.added) + len(self.summary.updated)
            yield IngestProgress(done, self.files_total, self.chunks_done, item.path)
        self.pending = []
        self.pending_chunks = 0
        if time.monotonic() - self.last_save > self.home.config.index_save_seconds:
            index.save()
            self.last_save = time.monotonic()


def _changes(
    home: Home, path: Path, existing: list[DocumentRow], summary: IngestSummary
) -> list[_PendingFile]:
    """What must be embedded for one file, as groups to commit; records skips and no-ops."""
    config = home.config
    store = home.store
    key = str(path)
    try:
        status = path.stat()
        if status.st_size > config.max_file_bytes:
            summary.skipped.append(
                Skipped(key, f"larger than {config.max_file_bytes // 1_000_000} MB")
            )
            return []
        if existing and all(
            row.size == status.st_size and row.mtime == status.st_mtime for row in existing
        ):
            summary.unchanged.append(key)
            return []
        data = path.read_bytes()
    except OSError as error:
        summary.skipped.append(Skipped(key, f"cannot read ({error.strerror})"))
        return []
    file_hash = hashlib.sha256(data).hexdigest()
    if existing and all(row.file_hash == file_hash for row in existing):
        store.touch_file(key, status.st_size, status.st_mtime)
        summary.unchanged.append(key)
        return []
    try:
        documents = list(read_documents(path, data, file_hash))
    except UnreadableFile as error:
        summary.skipped.append(Skipped(key, str(error)))
        if existing:  # it was readable before; its old text no longer stands for the file
            removed = store.forget_paths([key])
            home.index.remove(removed)
            summary.chunks_removed += len(removed)
            summary.removed.append(key)
        return []
    old_hashes = {row.key: row.content_hash for row in existing}
    final_keys = [document.key for document in documents]
    changed = [d for d in documents if old_hashes.get(d.key) != d.content_hash]
    if not changed:  # same rows, new bytes (reordered lines, say): drop vanished rows only
        removed, _ = store.replace_file(key, [], final_keys)
        home.index.remove(removed)
        store.touch_file(key, status.st_size, status.st_mtime, file_hash)
        summary.chunks_removed += len(removed)
        summary.updated.append(key)
        return []
    groups: list[_PendingFile] = []
    current: list[tuple[NewDocument, list[str]]] = []
    current_chunks = 0
    for document in changed:
        texts, new_document = _prepare(home, document, key, file_hash, status)
        current.append((new_document, texts))
        current_chunks += len(texts)
        if current_chunks >= FLUSH_CHUNKS:
            groups.append(_PendingFile(key, not existing, current, [], last=False))
            current, current_chunks = [], 0
    if current:
        groups.append(_PendingFile(key, not existing, current, [], last=False))
    for group in groups:
        own = {document.key for document, _ in group.documents}
        group.keep_keys = [k for k in final_keys if k not in own]
    groups[-1].last = True
    return groups


def _prepare(
    home: Home, document: Document, key: str, file_hash: str, status: os.stat_result
) -> tuple[list[str], NewDocument]:
    """Chunk one document; returns the texts to embed and the document (vectors to come)."""
    config = home.config
    chunks = chunk_document(
        document,
        home.embedder.count_tokens,
        target=config.chunk_tokens,
        overlap=config.chunk_overlap,
        limit=home.embedder.chunk_limit,
    )
    new_chunks = [
        NewChunk(
            ordinal=chunk.ordinal,
            text=chunk.text,
            start_line=chunk.start_line,
            end_line=chunk.end_line,
            page=chunk.page,
            heading=chunk.heading,
            token_count=chunk.token_count,
            embedding=np.zeros(0, dtype=np.float32),
        )
        for chunk in chunks
    ]
    new_document = NewDocument(
        key=document.key,
        path=key,
        format=document.format,
        title=document.title,
        content_hash=document.content_hash or file_hash,
        file_hash=file_hash,
        size=status.st_size,
        mtime=status.st_mtime,
        chunks=new_chunks,
    )
    return [passage_text(chunk.heading, chunk.text) for chunk in chunks], new_document


def _with_vectors(document: NewDocument, vectors: np.ndarray) -> NewDocument:
    chunks = [
        NewChunk(
            ordinal=chunk.ordinal,
            text=chunk.text,
            start_line=chunk.start_line,
            end_line=chunk.end_line,
            page=chunk.page,
            heading=chunk.heading,
            token_count=chunk.token_count,
            embedding=vector,
        )
        for chunk, vector in zip(document.chunks, vectors, strict=True)
    ]
    return NewDocument(**{**document.__dict__, "chunks": chunks})


def _stack(documents: Sequence[NewDocument]) -> np.ndarray:
    return np.vstack([chunk.embedding for document in documents for chunk in document.chunks])
