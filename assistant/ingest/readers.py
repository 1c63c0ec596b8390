"""Turn one file into documents made of blocks that remember where they came from.

A block is a paragraph-sized piece of text with its line range (or PDF page; a paragraph,
slide or chapter number for the formats of `office` and `ebooks`) and the path of headings
above it. Chunking packs blocks into chunks later; citations point back to these lines, so
line numbers are 1-based and always name the real lines of the file. Readers never guess
silently: a file we cannot read raises `UnreadableFile` with the reason, and the ingest summary
names it. Markup formats are parsed in `markup`, office documents in `office`, e-books in
`ebooks`, blocks built with `blocks`, and bytes become text in `encoding` (UTF-8 first, else
the encoding the file was written in); PDF and BEIR JSONL (one document per line) are read here.
A PDF page without a text layer (a scan) is read by `ocr` where the OCR extra is installed; either
way the document's `notes` say which pages that was, for the ingest summary.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import UnreadableFile as UnreadableFile  # where readers' callers find it
from assistant.ingest.blocks import Block, paragraph_blocks
from assistant.ingest.encoding import decode_text as decode_text
from assistant.ingest.markup import html_blocks, markdown_blocks, rst_blocks

TEXT_SUFFIXES = {".txt", ".text", ".log"}
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx"}
RST_SUFFIXES = {".rst", ".rest"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
PDF_SUFFIXES = {".pdf"}
JSONL_SUFFIXES = {".jsonl"}
# Formats read from a zip package by `office` and `ebooks`: suffix -> format name.
PACKAGE_FORMATS = {".docx": "docx", ".pptx": "pptx", ".odt": "odt", ".epub": "epub"}
CODE_SUFFIXES = {
    ".py", ".pyi", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".c", ".h", ".cc",
    ".cpp", ".hpp", ".cs", ".go", ".rs", ".rb", ".php", ".swift", ".scala", ".sh", ".bash",
    ".sql", ".r", ".lua", ".pl", ".toml", ".yaml", ".yml", ".ini", ".cfg", ".css",
}  # fmt: skip
# Formats we do not read but that a program can save as one we do.
_CONVERTIBLE = {
    ".doc": ".docx", ".dot": ".docx", ".rtf": ".docx", ".wpd": ".docx", ".pages": ".docx",
    ".ppt": ".pptx", ".pps": ".pptx", ".odp": ".pptx", ".key": ".pptx",
    ".mobi": ".epub", ".azw": ".epub", ".azw3": ".epub", ".fb2": ".epub",
}  # fmt: skip


@dataclass(frozen=True)
class Document:
    """What a reader produces: one document's text as blocks, plus identity and metadata."""

    key: str  # unique in the store: the resolved file path, plus "#id" for JSONL rows
    source: str  # the file it came from
    format: str
    title: str
    blocks: tuple[Block, ...]
    content_hash: str = ""
    notes: tuple[str, ...] = ()  # what the ingest summary should say about it (pages OCR'd...)

    @property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks)


def detect_format(path: Path) -> str | None:
    """The reader name for a path, or None when we do not read that kind of file."""
    name = path.name.lower()
    suffix = path.suffix.lower()
    if name.endswith((".rst.txt", ".rest.txt")):
        return "rst"  # Sphinx ships sources as .rst.txt
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in RST_SUFFIXES:
        return "rst"
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in PACKAGE_FORMATS:
        return PACKAGE_FORMATS[suffix]
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in CODE_SUFFIXES:
        return "code"
    return None


def unsupported_reason(path: Path) -> str:
    """Why a file of a kind we do not read is skipped, and what would make it readable."""
    suffix = path.suffix.lower()
    reason = f"unsupported type ({suffix or 'no extension'})"
    if suffix in _CONVERTIBLE:
        reason += f": save it as {_CONVERTIBLE[suffix]}"
    return reason


def read_documents(path: Path, data: bytes, content_hash: str) -> Iterator[Document]:
    """The documents in one file (one, or one per line for BEIR JSONL)."""
    file_format = detect_format(path)
    if file_format is None:
        raise UnreadableFile(unsupported_reason(path))
    if not data.strip():
        raise UnreadableFile("empty file")
    key = str(path)
    if file_format == "pdf":
        blocks, title, notes = _pdf_blocks(data)
        yield _document(key, "pdf", title or path.stem, blocks, content_hash, notes)
        return
    if file_format in PACKAGE_FORMATS.values():
        blocks, title = _package_blocks(file_format, data)
        title = title.strip() or _first_heading(blocks) or path.stem
        yield _document(key, file_format, title, blocks, content_hash)
        return
    text = decode_text(data)
    if not text.strip():
        raise UnreadableFile("empty file")
    if file_format == "jsonl":
        yield from _jsonl_documents(path, text)
        return
    title = ""
    if file_format == "markdown":
        blocks, title = markdown_blocks(text)
    elif file_format == "rst":
        blocks = rst_blocks(text)
    elif file_format == "html":
        blocks, title = html_blocks(text)
    else:
        blocks = paragraph_blocks(text.split("\n"), 1, ())
    title = title or _first_heading(blocks) or path.stem
    yield _document(key, file_format, title, blocks, content_hash)


def _document(
    key: str,
    file_format: str,
    title: str,
    blocks: list[Block],
    content_hash: str,
    notes: tuple[str, ...] = (),
) -> Document:
    if not blocks:
        raise UnreadableFile("no text found")
    return Document(key, key, file_format, title.strip(), tuple(blocks), content_hash, notes)


def _package_blocks(file_format: str, data: bytes) -> tuple[list[Block], str]:
    """Blocks and title of a zip-packaged format; its library is imported only when needed."""
    if file_format == "epub":
        from assistant.ingest.ebooks import epub_blocks

        return epub_blocks(data)
    from assistant.ingest import office

    readers = {"docx": office.docx_blocks, "pptx": office.pptx_blocks, "odt": office.odt_blocks}
    return readers[file_format](data)


def _first_heading(blocks: list[Block]) -> str | None:
    for block in blocks:
        if block.headings:
            return block.headings[0]
    return None


def _pdf_blocks(data: bytes) -> tuple[list[Block], str, tuple[str, ...]]:
    """The blocks (each with its page), the title, and notes on the pages without a text layer:
    read by OCR where the extra is installed, else named as needing it."""
    import io

    import pypdf

    from assistant.ingest import ocr

    with_ocr = ocr.available()
    scanned: list[int] = []  # pages with images but no text layer
    unread: list[int] = []  # those left unread: no OCR installed, or it found no text
    encrypted = False
    try:
        with _quiet_logger("pypdf"):
            reader = pypdf.PdfReader(io.BytesIO(data))
            # Many PDFs are encrypted only against editing, with an empty password for reading.
            encrypted = reader.is_encrypted
            if encrypted and not reader.decrypt(""):
                raise UnreadableFile("encrypted PDF (needs a password)")
            blocks: list[Block] = []
            for number, page in enumerate(reader.pages, start=1):
                page_text = (page.extract_text() or "").replace("\r\n", "\n").replace("\r", "\n")
                if not page_text.strip() and _has_images(page):
                    scanned.append(number)
                    page_text = ocr.page_text(page) if with_ocr else ""
                    if not page_text.strip():
                        unread.append(number)
                blocks.extend(paragraph_blocks(page_text.split("\n"), 1, (), page=number))
            title = ""
            if reader.metadata is not None and reader.metadata.title:
                title = str(reader.metadata.title)
    except UnreadableFile:
        raise
    except Exception as error:  # pypdf fails in many ways on damaged files; all mean "skip it"
        kind = "encrypted" if encrypted else "unreadable"
        raise UnreadableFile(f"{kind} PDF ({type(error).__name__}: {error})") from None
    if not blocks:
        if with_ocr:
            raise UnreadableFile("scanned PDF: no text layer, and OCR found no text in its images")
        raise UnreadableFile(f"scanned PDF: no text layer ({ocr.HINT})")
    if not title.strip():
        title = blocks[0].text.split("\n")[0][:120]
    notes: list[str] = []
    read = [number for number in scanned if number not in unread]
    if read:
        notes.append(f"{ocr.describe_pages(read)} read by OCR (no text layer)")
    if unread and with_ocr:
        notes.append(f"{ocr.describe_pages(unread)}: no text layer, and OCR found no text")
    elif unread:
        notes.append(f"{ocr.describe_pages(unread)} not read: no text layer ({ocr.HINT})")
    return blocks, title, tuple(notes)


def _has_images(page: Any) -> bool:
    """Whether a pypdf page draws any image (a scanned page is one); False when its resources
    cannot be read."""
    try:
        return len(page.images) > 0
    except Exception:  # pypdf fails in many ways on damaged resources: no image to read then
        return False


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Silence a library's logger for a while.

    pypdf logs to stderr what it also raises ("EOF marker not found"); the ingest summary already
    names the file and the reason, and a log line without the file's name helps no one.
    """
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _jsonl_documents(path: Path, text: str) -> Iterator[Document]:
    """BEIR-style corpus: each line `{_id, title, text}` is one document keyed `path#_id`.

    Each row gets the hash of its own line, so re-ingesting a changed corpus only redoes the
    rows that changed. Rows with neither text nor title hold nothing to retrieve and are skipped.
    """
    seen: dict[str, int] = {}
    found = False
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {line_number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UnreadableFile(f"{where}: invalid JSON ({error.msg})") from None
        if not isinstance(row, dict) or "_id" not in row or "text" not in row:
            raise UnreadableFile(f"{where}: expected an object with _id and text")
        row_id, body, title = row["_id"], row["text"], row.get("title")
        if isinstance(row_id, bool) or not isinstance(row_id, str | int) or str(row_id) == "":
            raise UnreadableFile(f"{where}: _id must be a non-empty string or number")
        if not isinstance(body, str) or not isinstance(title, str | None):
            raise UnreadableFile(f"{where}: text and title must be strings")
        row_id = str(row_id)
        if row_id in seen:
            raise UnreadableFile(
                f"{where}: duplicate _id {row_id!r} (first on line {seen[row_id]})"
            )
        seen[row_id] = line_number
        title = (title or "").strip()
        body = body.strip() or title
        if not body:
            continue
        block = Block(body, line_number, line_number, None, (title,) if title else ())
        row_hash = hashlib.sha256(line.encode()).hexdigest()
        found = True
        yield Document(f"{path}#{row_id}", str(path), "jsonl", title or row_id, (block,), row_hash)
    if not found:
        raise UnreadableFile("no text found")
