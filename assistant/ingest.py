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
from assistant.readers import UnreadableFile, detect_format, read_documents
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
    path: str
    is_new: bool
    documents: list[tuple[NewDocument, list[str]]]  # document (chunks without vectors) + texts
    keep_keys: list[str]


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
    config = home.config
    files, folders, skipped = discover(paths)
    summary = IngestSummary(skipped=skipped)
    store = home.store
    known: dict[str, list[DocumentRow]] = {}
    for row in store.documents():
        known.setdefault(row.path, []).append(row)

    pending: list[_PendingFile] = []
    pending_chunks = 0
    chunks_done = 0
    last_save = time.monotonic()

    def flush() -> Iterator[IngestProgress]:
        nonlocal pending, pending_chunks, chunks_done, last_save
        if not pending:
            return
        texts = [text for item in pending for _, texts in item.documents for text in texts]
        vectors = home.embedder.embed(texts)
        offset = 0
        index = home.index
        for item in pending:
            documents: list[NewDocument] = []
            for document, document_texts in item.documents:
                count = len(document_texts)
                document_vectors = vectors[offset : offset + count]
                offset += count
                documents.append(_with_vectors(document, document_vectors))
            removed, added = store.replace_file(item.path, documents, item.keep_keys)
            index.remove(removed)
            if added:
                index.add(np.asarray(added, dtype=np.int64), _stack(documents))
            summary.chunks_added += len(added)
            summary.chunks_removed += len(removed)
            (summary.added if item.is_new else summary.updated).append(item.path)
            chunks_done += len(added)
        pending = []
        pending_chunks = 0
        if time.monotonic() - last_save > config.index_save_seconds:
            index.save()
            last_save = time.monotonic()
        yield IngestProgress(len(summary.added) + len(summary.updated), len(files), chunks_done, "")

    for number, path in enumerate(files, start=1):
        key = str(path)
        existing = known.get(key, [])
        try:
            status = path.stat()
        except OSError as error:
            summary.skipped.append(Skipped(key, f"cannot read ({error.strerror})"))
            continue
        yield IngestProgress(number - 1, len(files), chunks_done, key)
        if status.st_size > config.max_file_bytes:
            summary.skipped.append(
                Skipped(key, f"larger than {config.max_file_bytes // 1_000_000} MB")
            )
            continue
        if existing and all(
            row.size == status.st_size and row.mtime == status.st_mtime for row in existing
        ):
            summary.unchanged.append(key)
            continue
        try:
            data = path.read_bytes()
        except OSError as error:
            summary.skipped.append(Skipped(key, f"cannot read ({error.strerror})"))
            continue
        file_hash = hashlib.sha256(data).hexdigest()
        if existing and all(row.file_hash == file_hash for row in existing):
            store.touch_file(key, status.st_size, status.st_mtime)
            summary.unchanged.append(key)
            continue
        try:
            documents = list(read_documents(path, data, file_hash))
        except UnreadableFile as error:
            summary.skipped.append(Skipped(key, str(error)))
            if existing:  # it was readable before; its old text no longer stands for the file
                removed = store.forget_paths([key])
                home.index.remove(removed)
                summary.chunks_removed += len(removed)
                summary.removed.append(key)
            continue
        old_hashes = {row.key: row.content_hash for row in existing}
        item = _PendingFile(key, not existing, [], [])
        for document in documents:
            if old_hashes.get(document.key) == document.content_hash:
                item.keep_keys.append(document.key)
                continue
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
            texts = [passage_text(chunk.heading, chunk.text) for chunk in chunks]
            item.documents.append((new_document, texts))
            pending_chunks += len(texts)
        pending.append(item)
        if pending_chunks >= FLUSH_CHUNKS:
            yield from flush()

    yield from flush()
    seen = {str(path) for path in files} | {item.path for item in summary.skipped}
    vanished = [
        stored
        for folder in folders
        for stored in sorted({row.path for row in store.documents(str(folder))})
        if stored not in seen
    ]
    if vanished:
        removed_ids = store.forget_paths(vanished)
        home.index.remove(removed_ids)
        summary.chunks_removed += len(removed_ids)
        summary.removed.extend(vanished)
    home.save_index()
    summary.seconds = time.perf_counter() - started
    yield summary


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
