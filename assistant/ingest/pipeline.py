"""Ingest folders and files: read, chunk, embed and store them, incrementally and resumably.

`ingest(home, paths)` is a generator of progress events ending with an `IngestSummary`, so the CLI
can draw a progress bar without this module knowing about terminals.

- Unchanged files (same size and mtime, or failing that the same SHA-256) are skipped without
  being read or embedded; the embedder is not even loaded when nothing changed.
- A changed file's documents are replaced in one transaction; for a JSONL corpus only the rows
  whose content changed are re-embedded.
- Re-ingesting a folder removes the documents whose files are gone from it (but not those under
  a folder it could not list, or of a file it could not read this time).
- Chunks from many files are embedded together, a slice of a few seconds at a time; each file (or
  part of a big file) is committed as soon as its slice is embedded, and the vector index is saved
  every `index_save_seconds`. A kill loses at most the last few seconds of embedding, and the
  next run picks up the rest (the index is reconciled with the database on open).
- What to read, and what to pass over, is decided in `discovery`; every file we do not ingest is
  reported with its reason, and nothing is dropped silently: a file ingested in part (a PDF page
  without a text layer, which needs OCR) is reported with a note saying which part.

Each file is first decided, then done: `planning.plan_file` looks at the file and its stored
rows and says what it is (unchanged, skipped and why, new or changed and which of its documents
to embed) without writing anything; `_apply` does what the plan says, through `Home`, which keeps
the database and the vector index in step. Files that are gone are decided the same way, by
`planning.plan_removals`, once every file has been seen. Files are decided one at a time, as they
come, so a big folder is never held in memory at once.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.embed.embedder import passage_text
from assistant.index.home import Home
from assistant.index.store import DocumentRow, NewChunk, NewDocument
from assistant.ingest.chunking import chunk_document
from assistant.ingest.discovery import Skipped, discover
from assistant.ingest.planning import Change, FilePlan, Skip, Unchanged, plan_file, plan_removals
from assistant.ingest.readers import Document

FLUSH_CHUNKS = 256  # start embedding once this many chunks are waiting
COMMIT_SECONDS = 5.0  # embed about this long between commits: what a kill can lose
FIRST_SLICE_CHUNKS = 16  # the first slice, before the embedding speed is known


@dataclass(frozen=True)
class FileNote:
    """Something to know about a file that was ingested, e.g. its pages read by OCR."""

    path: str
    note: str


@dataclass
class IngestSummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[FileNote] = field(default_factory=list)
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
                "notes": [{"path": n.path, "note": n.note} for n in self.notes],
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
    keep_keys: list[str]  # every document key of the file once ingested: commits keep the others
    last: bool = True  # the file's last group: counting it as added/updated happens here


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
        plan = plan_file(path, known.get(key, []), home.config.max_file_bytes)
        for group in _apply(home, plan, summary):
            writer.pending.append(group)
            writer.pending_chunks += sum(len(texts) for _, texts in group.documents)
            if writer.pending_chunks >= FLUSH_CHUNKS:
                yield from writer.flush()
    yield from writer.flush()

    vanished = plan_removals(
        [[row.path for row in home.store.documents(str(folder))] for folder in folders],
        ingested={str(path) for path in files},
        kept={item.path for item in summary.skipped if not item.forget},
    )
    if vanished:
        summary.chunks_removed += len(home.forget(vanished))
        summary.removed.extend(vanished)
    home.save_index()
    summary.seconds = time.perf_counter() - started
    yield summary


class _Writer:
    """Embeds waiting documents a slice at a time and commits what each slice completes (through
    `Home.replace`, so the vector index changes with the database) and saves the index now and then.

    A slice holds about `COMMIT_SECONDS` of embedding at the speed measured on the slice before,
    so commits come every few seconds however slow the machine. Documents are the unit: a file
    whose documents span slices is committed in parts, and until its last part its documents
    carry no file hash, so a run that is killed half-way through it is finished by the next one,
    which embeds only the documents not yet stored.
    """

    def __init__(self, home: Home, summary: IngestSummary, files_total: int) -> None:
        self.home = home
        self.summary = summary
        self.files_total = files_total
        self.pending: list[_PendingFile] = []
        self.pending_chunks = 0
        self.chunks_done = 0
        self.slice_chunks = FIRST_SLICE_CHUNKS
        self.last_save = time.monotonic()

    def flush(self) -> Iterator[IngestProgress]:
        while self.pending:
            part = self._take_slice()
            texts = [text for _, documents, _ in part for _, texts in documents for text in texts]
            started = time.monotonic()
            vectors = self.home.embedder.embed(texts)
            if texts:
                speed = len(texts) / max(time.monotonic() - started, 1e-3)
                self.slice_chunks = max(1, int(speed * COMMIT_SECONDS))
            offset = 0
            for item, documents, final in part:
                ready: list[NewDocument] = []
                for document, document_texts in documents:
                    end = offset + len(document_texts)
                    ready.append(_with_vectors(document, vectors[offset:end], final))
                    offset = end
                self._commit(item, ready, final)
                done = len(self.summary.added) + len(self.summary.updated)
                yield IngestProgress(done, self.files_total, self.chunks_done, item.path)
            if time.monotonic() - self.last_save > self.home.config.index_save_seconds:
                self.home.save_index()
                self.last_save = time.monotonic()
        self.pending_chunks = 0

    def _take_slice(self) -> list[tuple[_PendingFile, list[tuple[NewDocument, list[str]]], bool]]:
        """Whole documents from the head of the queue, about `slice_chunks` chunks (at least
        one document); each with its file and whether this part finishes the file."""
        taken: list[tuple[_PendingFile, list[tuple[NewDocument, list[str]]], bool]] = []
        count = 0
        while self.pending and count < self.slice_chunks:
            item = self.pending[0]
            documents: list[tuple[NewDocument, list[str]]] = []
            while item.documents and count < self.slice_chunks:
                document = item.documents.pop(0)
                documents.append(document)
                count += len(document[1])
            if not item.documents:
                self.pending.pop(0)
            taken.append((item, documents, item.last and not item.documents))
        return taken

    def _commit(self, item: _PendingFile, documents: list[NewDocument], final: bool) -> None:
        removed, added = self.home.replace(item.path, documents, item.keep_keys)
        self.summary.chunks_added += len(added)
        self.summary.chunks_removed += len(removed)
        self.chunks_done += len(added)
        if final:
            (self.summary.added if item.is_new else self.summary.updated).append(item.path)


def _apply(home: Home, plan: FilePlan, summary: IngestSummary) -> list[_PendingFile]:
    """Do what `plan` says, and record it in `summary`; returns what must still be embedded,
    as groups to commit (a big file in several)."""
    if isinstance(plan, Unchanged):
        if plan.touch is not None:
            home.touch(plan.path, *plan.touch)
        summary.unchanged.append(plan.path)
        return []
    if isinstance(plan, Skip):
        summary.skipped.append(Skipped(plan.path, plan.reason))
        if plan.forget_stored:
            summary.chunks_removed += len(home.forget([plan.path]))
            summary.removed.append(plan.path)
        return []
    keys = list(plan.keys)
    summary.notes.extend(
        FileNote(plan.path, note) for document in plan.documents for note in document.notes
    )
    if not plan.documents:
        removed, _ = home.replace(plan.path, [], keys)
        home.touch(plan.path, plan.size, plan.mtime, plan.file_hash)
        summary.chunks_removed += len(removed)
        summary.updated.append(plan.path)
        return []
    groups: list[_PendingFile] = []
    current: list[tuple[NewDocument, list[str]]] = []
    current_chunks = 0
    for document in plan.documents:
        texts, new_document = _prepare(home, document, plan)
        current.append((new_document, texts))
        current_chunks += len(texts)
        if current_chunks >= FLUSH_CHUNKS:
            groups.append(_PendingFile(plan.path, plan.is_new, current, keys, last=False))
            current, current_chunks = [], 0
    if current:
        groups.append(_PendingFile(plan.path, plan.is_new, current, keys, last=False))
    groups[-1].last = True
    return groups


def _prepare(home: Home, document: Document, plan: Change) -> tuple[list[str], NewDocument]:
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
        path=plan.path,
        format=document.format,
        title=document.title,
        content_hash=document.content_hash or plan.file_hash,
        file_hash=plan.file_hash,
        size=plan.size,
        mtime=plan.mtime,
        chunks=new_chunks,
    )
    return [passage_text(chunk.heading, chunk.text) for chunk in chunks], new_document


def _with_vectors(document: NewDocument, vectors: np.ndarray, final: bool) -> NewDocument:
    """The document with its chunks' vectors; marked unfinished (no file hash, no size) unless
    this commit completes its file, so that an interrupted file is never taken as unchanged."""
    chunks = [
        dataclasses.replace(chunk, embedding=vector)
        for chunk, vector in zip(document.chunks, vectors, strict=True)
    ]
    if final:
        return dataclasses.replace(document, chunks=chunks)
    return dataclasses.replace(document, chunks=chunks, file_hash="", size=-1)
