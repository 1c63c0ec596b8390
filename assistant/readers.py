"""Turn one file into documents made of blocks that remember where they came from.

A block is a paragraph-sized piece of text with its line range (or PDF page) and the path of
headings above it. Chunking packs blocks into chunks later; citations point back to these lines,
so line numbers are 1-based and always name the real lines of the file. Readers never guess
silently: a file we cannot read raises `UnreadableFile` with the reason, and the ingest summary
names it.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

from assistant.errors import InputError

TEXT_SUFFIXES = {".txt", ".text", ".log"}
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx"}
RST_SUFFIXES = {".rst", ".rest"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
PDF_SUFFIXES = {".pdf"}
JSONL_SUFFIXES = {".jsonl"}
CODE_SUFFIXES = {
    ".py", ".pyi", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".c", ".h", ".cc",
    ".cpp", ".hpp", ".cs", ".go", ".rs", ".rb", ".php", ".swift", ".scala", ".sh", ".bash",
    ".sql", ".r", ".lua", ".pl", ".toml", ".yaml", ".yml", ".ini", ".cfg", ".css",
}  # fmt: skip


@dataclass(frozen=True)
class Block:
    """A paragraph-sized piece of a document and where it sits."""

    text: str
    start_line: int | None
    end_line: int | None
    page: int | None = None
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Document:
    """What a reader produces: one document's text as blocks, plus identity and metadata."""

    key: str  # unique in the store: the resolved file path, plus "#id" for JSONL rows
    source: str  # the file it came from
    format: str
    title: str
    blocks: tuple[Block, ...]
    content_hash: str = ""

    @property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks)


class UnreadableFile(InputError):
    """A file we skip, with the reason shown to the user."""


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
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in CODE_SUFFIXES:
        return "code"
    return None


def decode_text(data: bytes) -> str:
    """The text of a file's bytes with "\\n" line ends, or `UnreadableFile` for binary data.

    UTF-8 (with or without a byte-order mark) is the norm; UTF-16 is accepted when it starts
    with its byte-order mark, as files written by Windows tools do.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise UnreadableFile("not valid UTF-16 despite its byte-order mark") from None
    else:
        if b"\x00" in data:
            raise UnreadableFile("binary file (contains NUL bytes)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            raise UnreadableFile(
                f"not UTF-8 text (invalid byte 0x{data[error.start]:02X} on line {line}); "
                "convert it to UTF-8"
            ) from None
    if "\x00" in text:
        raise UnreadableFile("binary file (contains NUL characters)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_documents(path: Path, data: bytes, content_hash: str) -> Iterator[Document]:
    """The documents in one file (one, or one per line for BEIR JSONL)."""
    file_format = detect_format(path)
    if file_format is None:
        raise UnreadableFile(f"unsupported format ({path.suffix or 'no extension'})")
    if not data.strip():
        raise UnreadableFile("empty file")
    key = str(path)
    if file_format == "pdf":
        blocks, title = _pdf_blocks(data)
        yield _document(key, "pdf", title or path.stem, blocks, content_hash)
        return
    text = decode_text(data)
    if not text.strip():
        raise UnreadableFile("empty file")
    if file_format == "jsonl":
        yield from _jsonl_documents(path, text)
        return
    title = ""
    if file_format == "markdown":
        blocks, title = _markdown_blocks(text)
    elif file_format == "rst":
        blocks = _rst_blocks(text)
    elif file_format == "html":
        blocks, title = _html_blocks(text)
    else:
        blocks = _paragraph_blocks(text.split("\n"), 1, ())
    title = title or _first_heading(blocks) or path.stem
    yield _document(key, file_format, title, blocks, content_hash)


def _document(
    key: str, file_format: str, title: str, blocks: list[Block], content_hash: str
) -> Document:
    if not blocks:
        raise UnreadableFile("no text found")
    return Document(key, key, file_format, title.strip(), tuple(blocks), content_hash)


def _first_heading(blocks: list[Block]) -> str | None:
    for block in blocks:
        if block.headings:
            return block.headings[0]
    return None


def _paragraph_blocks(
    lines: list[str], first_line: int, headings: tuple[str, ...], page: int | None = None
) -> list[Block]:
    """Split lines into blank-line separated paragraphs; line numbers start at first_line.

    A block's text is its lines joined unchanged, so line i of the text is source line
    start_line + i (chunking relies on this to give exact line ranges).
    """
    blocks: list[Block] = []
    start: int | None = None
    for offset, line in enumerate([*lines, ""]):
        if line.strip():
            if start is None:
                start = offset
        elif start is not None:
            text = "\n".join(lines[start:offset])
            if page is None:
                blocks.append(
                    Block(text, first_line + start, first_line + offset - 1, None, headings)
                )
            else:
                blocks.append(Block(text, None, None, page, headings))
            start = None
    return blocks


def _sectioned_blocks(lines: list[str], headings_at: dict[int, tuple[int, str]]) -> list[Block]:
    """Blocks of a text whose heading lines are known: {line index: (level, title)}.

    Heading markup other than the title line itself (underlines, overlines) must already be
    blanked out by the caller, keeping the line count so line numbers stay true.
    """
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []
    section_start = 0
    for index in [*sorted(headings_at), len(lines)]:
        path = tuple(title for _, title in stack)
        blocks.extend(_paragraph_blocks(lines[section_start:index], section_start + 1, path))
        if index == len(lines):
            break
        level, title = headings_at[index]
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        section_start = index + 1
    return blocks


# The closing run of #s must follow a space: "# C#" is the heading "C#".
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+|$)(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s|>|\|)")  # list item, quote, table row
_FRONT_MATTER_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*[:=]")
_FRONT_MATTER_TITLE = re.compile(r"^title\s*[:=]\s*(.*?)\s*$")


def _markdown_blocks(text: str) -> tuple[list[Block], str]:
    """CommonMark-style sections (ATX and setext headings), plus the front-matter title."""
    lines = text.split("\n")
    title = _strip_front_matter(lines)
    headings: dict[int, tuple[int, str]] = {}
    markup: set[int] = set()  # lines that cannot be part of a setext title's paragraph
    fence: str | None = None
    for index, line in enumerate(lines):
        fence_match = _FENCE.match(line)
        if fence is not None:
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
                and not fence_match.group(2).strip()
            ):
                fence = None
            markup.add(index)  # neither a heading nor a setext title line
            continue
        if fence_match and not (fence_match.group(1)[0] == "`" and "`" in fence_match.group(2)):
            fence = fence_match.group(1)
            markup.add(index)
            continue
        match = _ATX_HEADING.match(line)
        if match:
            heading = match.group(2).strip()
            if heading:
                headings[index] = (len(match.group(1)), heading)
            else:
                lines[index] = ""  # an empty heading is markup with nothing to say
            markup.add(index)
            continue
        underline = _SETEXT_UNDERLINE.match(line)
        if underline and index > 0:
            first = _setext_title_start(lines, index, markup)
            if first is not None:
                level = 1 if underline.group(1)[0] == "=" else 2
                title_text = " ".join(part.strip() for part in lines[first:index])
                headings[first] = (level, title_text)
                for covered in range(first + 1, index + 1):
                    lines[covered] = ""
                markup.add(index)
                continue
        if _THEMATIC_BREAK.match(line):
            lines[index] = ""
            markup.add(index)
    return _sectioned_blocks(lines, headings), title


def _setext_title_start(lines: list[str], underline: int, markup: set[int]) -> int | None:
    """Index of the first line of the paragraph a setext underline turns into a heading."""
    first = underline
    while first > 0 and lines[first - 1].strip() and first - 1 not in markup:
        first -= 1
    if first == underline:
        return None
    for line in lines[first:underline]:
        if _NOT_PARAGRAPH.match(line) or line.startswith(("    ", "\t")):
            return None
    return first


def _strip_front_matter(lines: list[str]) -> str:
    """Blank out YAML (---) or TOML (+++) front matter in place; return its title, if any."""
    if not lines or lines[0].rstrip() not in ("---", "+++"):
        return ""
    closers = ("---", "...") if lines[0].rstrip() == "---" else ("+++",)
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in closers), None)
    if end is None or not any(_FRONT_MATTER_KEY.match(line) for line in lines[1:end]):
        return ""
    title = ""
    for line in lines[1:end]:
        match = _FRONT_MATTER_TITLE.match(line)
        if match and not title:
            title = match.group(1).strip().strip("\"'")
    for index in range(end + 1):
        lines[index] = ""
    return title


# Any run of one 7-bit punctuation character can adorn a reST title.
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+[ \t]*$")


# Explicit markup (".. note::") and bullet items win over a title underline in docutils.
_RST_NOT_TITLE = re.compile(r"^(?:\.\.(?:\s|$)|[-*+\u2022](?:\s|$))")


def _is_adornment(line: str) -> bool:
    stripped = line.rstrip()
    if not _RST_ADORNMENT.match(line):
        return False
    # "::" and ".." are literal-block and comment markup, not two-character adornments.
    return len(stripped) > 2 or stripped not in ("::", "..")


def _column_width(text: str) -> int:
    """Width of text in columns, as docutils measures titles (wide East Asian glyphs are 2)."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def _rst_blocks(text: str) -> list[Block]:
    """reStructuredText sections: a title underlined (and optionally overlined) by punctuation.

    As in docutils, a title starts a text block (blank line or start of file above it), its
    adornment is at least as long as the title (so "F1" over "~~" counts, but a "--" below a
    longer line does not), and levels follow the order in which adornment styles first appear.
    """
    lines = text.split("\n")
    headings: dict[int, tuple[int, str]] = {}
    styles: list[tuple[str, bool]] = []
    index = 0
    while index < len(lines) - 1:
        line = lines[index]
        starts_block = index == 0 or not lines[index - 1].strip()
        title_index = None
        overlined = False
        if (
            starts_block
            and _is_adornment(line)
            and index + 2 < len(lines)
            and lines[index + 1].strip()
            and not _is_adornment(lines[index + 1])
            and lines[index + 2].rstrip() == line.rstrip()
            and _column_width(lines[index + 1].rstrip()) <= len(line.rstrip())
        ):
            title_index, overlined = index + 1, True
        elif (
            starts_block
            and line.strip()
            and not line[0].isspace()
            and not _RST_NOT_TITLE.match(line)
            and not _is_adornment(line)
            and _is_adornment(lines[index + 1])
            and len(lines[index + 1].rstrip()) >= _column_width(line.rstrip())
        ):
            title_index = index
        if title_index is None:
            index += 1
            continue
        char = lines[title_index + 1].strip()[0]
        style = (char, overlined)
        if style not in styles:
            styles.append(style)
        headings[title_index] = (styles.index(style) + 1, lines[title_index].strip())
        lines[title_index + 1] = ""
        if overlined:
            lines[title_index - 1] = ""
        index = title_index + 2
    return _sectioned_blocks(lines, headings)


class _VisibleText(HTMLParser):
    """Collects visible text of an HTML page as blocks, tracking headings and source lines."""

    HIDDEN = frozenset({
        "script", "style", "noscript", "template", "head", "svg", "nav", "iframe", "object",
        "canvas", "select", "datalist",
    })  # fmt: skip
    BREAKS = frozenset({
        "p", "div", "li", "ul", "ol", "pre", "blockquote", "section", "article", "tr", "table",
        "hr", "dd", "dt", "dl", "figure", "figcaption", "caption", "header", "footer", "main",
        "aside", "details", "summary", "address", "fieldset", "legend", "form", "body",
        "thead", "tbody", "tfoot",
    })  # fmt: skip
    SPACES = frozenset({"br", "td", "th", "img", "input", "wbr"})  # separate words, not paragraphs
    VOID = frozenset({
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr",
    })  # fmt: skip
    HEADINGS: ClassVar[dict[str, int]] = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title = ""
        self._hidden: list[str] = []  # open elements whose content is not shown
        self._in_title = False
        self._heading_level: int | None = None
        self._stack: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._start_line: int | None = None
        self._end_line: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and "head" in self._hidden:
            self._hidden.clear()  # </head> is optional in HTML
        if tag == "title" and not self.title and "svg" not in self._hidden:
            self._in_title = True
            return
        if self._hidden or tag in self.HIDDEN or _hidden_by_attributes(attrs):
            if tag not in self.VOID:
                self._hidden.append(tag)
            return
        if tag in self.HEADINGS:
            self._flush()
            self._heading_level = self.HEADINGS[tag]
        elif tag in self.BREAKS:
            self._flush()
        elif tag in self.SPACES:
            self._parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            return
        if self._hidden:
            if tag in self._hidden:
                while self._hidden.pop() != tag:
                    pass
            return
        if tag in self.HEADINGS and self._heading_level is not None:
            title = " ".join("".join(self._parts).split())
            level = self._heading_level
            self._parts, self._start_line, self._heading_level = [], None, None
            if title:
                while self._stack and self._stack[-1][0] >= level:
                    self._stack.pop()
                self._stack.append((level, title))
        elif tag in self.BREAKS:
            self._flush()
        elif tag in self.SPACES:
            self._parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._hidden:
            return
        if not data.strip():
            self._parts.append(data)  # the space between two inline elements
            return
        line = self.getpos()[0]
        if self._start_line is None:
            self._start_line = line + data[: len(data) - len(data.lstrip())].count("\n")
        self._end_line = line + data.rstrip().count("\n")
        self._parts.append(data)

    def _flush(self) -> None:
        if self._heading_level is not None:
            return
        text = " ".join("".join(self._parts).split())
        if text and self._start_line is not None and self._end_line is not None:
            headings = tuple(title for _, title in self._stack)
            self.blocks.append(Block(text, self._start_line, self._end_line, None, headings))
        self._parts, self._start_line, self._end_line = [], None, None

    def close(self) -> None:
        super().close()
        self._heading_level = None  # an unclosed heading: keep its text as a paragraph
        self._flush()


def _hidden_by_attributes(attrs: list[tuple[str, str | None]]) -> bool:
    for name, value in attrs:
        if name == "hidden" or (name == "aria-hidden" and value == "true"):
            return True
        if name == "style" and value and re.search(r"display\s*:\s*none", value, re.IGNORECASE):
            return True
    return False


def _html_blocks(text: str) -> tuple[list[Block], str]:
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    return parser.blocks, " ".join(parser.title.split())


def _pdf_blocks(data: bytes) -> tuple[list[Block], str]:
    import io

    import pypdf

    encrypted = False
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        # Many PDFs are encrypted only against editing, with an empty password for reading.
        encrypted = reader.is_encrypted
        if encrypted and not reader.decrypt(""):
            raise UnreadableFile("encrypted PDF (needs a password)")
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            page_text = (page.extract_text() or "").replace("\r\n", "\n").replace("\r", "\n")
            blocks.extend(_paragraph_blocks(page_text.split("\n"), 1, (), page=number))
        title = ""
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
    except UnreadableFile:
        raise
    except Exception as error:  # pypdf fails in many ways on damaged files; all mean "skip it"
        kind = "encrypted" if encrypted else "unreadable"
        raise UnreadableFile(f"{kind} PDF ({type(error).__name__}: {error})") from None
    if not blocks:
        raise UnreadableFile("PDF has no extractable text (scanned images?)")
    if not title.strip():
        title = blocks[0].text.split("\n")[0][:120]
    return blocks, title


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
