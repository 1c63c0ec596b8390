"""Office documents into blocks: Word (.docx), OpenDocument text (.odt) and PowerPoint (.pptx).

These files have no lines a user could go to, so citations point at what their programs show:

- A word-processing document is located by paragraph. Paragraph N is the N-th paragraph with
  text from the start of the body, headings and table rows included (a table row counts as one
  paragraph, its cells joined by " | "); each block is one paragraph, its number stored as the
  block's line range, so a chunk cites "paragraphs 12-14". Headings (the Title and Heading
  styles, or any paragraph with an outline level) become the heading path of what follows.
- A presentation is located by slide: the slide number is stored as the block's page, the slide
  title is its heading, and each text box or table is a block; speaker notes come under the
  heading "Notes" so they are never mixed with the slide's own text.

Headers, footers, comments, footnotes and tracked deletions are left out (tracked insertions
are kept: the text reads as the document shows it). The libraries are
imported when a file needs them, so starting the assistant does not pay for them.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assistant.errors import UnreadableFile
from assistant.ingest.blocks import Block

if TYPE_CHECKING:
    from docx.styles.style import ParagraphStyle
    from docx.text.paragraph import Paragraph
    from pptx.shapes.base import BaseShape

# Compound File Binary: an encrypted Office file (its package is inside, encrypted), or an
# old .doc/.ppt given a new name.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADING_STYLE = re.compile(r"heading (\d)")
# A paragraph's runs: python-docx's `Paragraph.text` reads only plain runs and hyperlinks, not
# tracked insertions, simple fields, smart tags or inline content controls.
_DOCX_RUNS = " | ".join(
    f"./{path}w:r"
    for path in ("", "w:hyperlink/", "w:ins/", "w:ins/w:hyperlink/", "w:smartTag/",
                 "w:fldSimple/", "w:sdt/w:sdtContent/")
)  # fmt: skip
_TABLE_OF_CONTENTS = "./w:sdtPr/w:docPartObj/w:docPartGallery[@w:val='Table of Contents']"
_NOTES = "Notes"


@dataclass(frozen=True)
class _Paragraph:
    """One paragraph of a word-processing document: a heading (with its level) or body text."""

    text: str
    level: int | None = None


def open_package(data: bytes, suffix: str) -> zipfile.ZipFile:
    """The zip archive an Office, OpenDocument or EPUB file is, or `UnreadableFile` saying why
    it is not one."""
    if data.startswith(_OLE_MAGIC):
        raise UnreadableFile(
            f"password-protected {suffix} (or an old binary file renamed {suffix}): "
            "save it again without a password"
        )
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UnreadableFile(f"damaged {suffix} file (not a zip archive)") from None


def damaged(suffix: str, error: Exception) -> UnreadableFile:
    """The skip reason for a file its library failed on: they fail in many ways, all meaning
    "skip it"."""
    return UnreadableFile(f"damaged {suffix} file ({type(error).__name__}: {error})")


def docx_blocks(data: bytes) -> tuple[list[Block], str]:
    """A Word document's paragraphs under their headings, and its title (from its properties)."""
    open_package(data, ".docx").close()
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = _paragraph_blocks(_docx_paragraphs(document.element.body, document))
        title = document.core_properties.title or ""
    except Exception as error:
        raise damaged(".docx", error) from None
    return blocks, title


def _docx_paragraphs(element: Any, document: Any) -> Iterator[_Paragraph]:
    """Paragraphs and table rows in body order, including those inside content controls (which
    `iter_inner_content` passes over), but not a generated table of contents."""
    from docx.oxml.ns import nsmap, qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in element.iterchildren():
        if child.tag == qn("w:p"):
            paragraph = Paragraph(child, document)
            text = "".join(run.text for run in child.xpath(_DOCX_RUNS))
            yield _Paragraph(text, _docx_level(paragraph))
        elif child.tag == qn("w:tbl"):
            for row in Table(child, document).rows:
                cells: list[str] = []
                for cell in row.cells:  # a merged cell is listed once per column it spans
                    text = " ".join(cell.text.split())
                    if text and (not cells or cells[-1] != text):
                        cells.append(text)
                yield _Paragraph(" | ".join(cells))
        elif child.tag == qn("w:sdt") and not child.xpath(_TABLE_OF_CONTENTS, namespaces=nsmap):
            for content in child.iterchildren(qn("w:sdtContent")):
                yield from _docx_paragraphs(content, document)


def _docx_level(paragraph: Paragraph) -> int | None:
    """The heading level of a paragraph (0 for the Title style), or None for body text.

    The style's name is English whatever the language of Word; an outline level, set on the
    paragraph or its style, makes a heading of a custom style too."""
    outline = paragraph._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    if outline:
        return _outline_level(outline[0])
    style: ParagraphStyle | None = paragraph.style
    while style is not None:
        name = (style.name or "").lower()
        if name == "title":
            return 0
        match = _HEADING_STYLE.fullmatch(name)
        if match:
            return int(match.group(1))
        outline = style.element.xpath("./w:pPr/w:outlineLvl/@w:val")
        if outline:
            return _outline_level(outline[0])
        style = style.base_style
    return None


def _outline_level(value: str) -> int | None:
    level = int(value) + 1 if value.isdigit() else 10
    return level if level <= 9 else None  # outline level 9 (here 10) is "body text"


def odt_blocks(data: bytes) -> tuple[list[Block], str]:
    """An OpenDocument text's paragraphs under their headings, and its title (from its meta)."""
    with open_package(data, ".odt") as package:
        try:
            manifest = package.read("META-INF/manifest.xml")
        except KeyError:
            manifest = b""
    if b"encryption-data" in manifest:
        raise UnreadableFile("password-protected .odt: save it again without a password")
    from odf.opendocument import load

    try:
        document = load(io.BytesIO(data))
        blocks = _paragraph_blocks(_odt_paragraphs(document.text))
        titles = [
            _odt_text(node)
            for node in document.meta.childNodes
            if getattr(node, "qname", None) == (_DC, "title")
        ]
    except Exception as error:
        raise damaged(".odt", error) from None
    return blocks, titles[0] if titles else ""


_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_DC = "http://purl.org/dc/elements/1.1/"
# Generated lists (a table of contents repeats the headings) and what is not body text.
_ODT_SKIPPED = {
    (_TEXT, name)
    for name in (
        "table-of-content", "alphabetical-index", "illustration-index", "table-index",
        "object-index", "user-index", "bibliography", "tracked-changes", "sequence-decls",
        "variable-decls", "user-field-decls", "note", "soft-page-break",
    )
} | {(_OFFICE, "annotation"), (_OFFICE, "forms")}  # fmt: skip


def _odt_paragraphs(element: Any) -> Iterator[_Paragraph]:
    for child in element.childNodes:
        name = getattr(child, "qname", None)
        if name is None or name in _ODT_SKIPPED:
            continue
        if name == (_TEXT, "h"):
            level = child.getAttrNS(_TEXT, "outline-level")
            yield _Paragraph(_odt_text(child), int(level) if level and level.isdigit() else 1)
        elif name == (_TEXT, "p"):
            yield _Paragraph(_odt_text(child))
        elif name == (_TABLE, "table-row"):
            cells = (_odt_text(cell) for cell in child.childNodes)
            yield _Paragraph(" | ".join(" ".join(cell.split()) for cell in cells if cell.strip()))
        else:  # sections, lists, tables, frames: their paragraphs, in order
            yield from _odt_paragraphs(child)


def _odt_text(element: Any) -> str:
    """The visible text of an element: spaces (`text:s`), tabs and line breaks as written."""
    parts: list[str] = []
    for child in element.childNodes:
        name = getattr(child, "qname", None)
        if name is None:
            parts.append(str(getattr(child, "data", "")))
        elif name in _ODT_SKIPPED:
            continue
        elif name == (_TEXT, "s"):
            count = child.getAttrNS(_TEXT, "c")
            parts.append(" " * (int(count) if count and count.isdigit() else 1))
        elif name == (_TEXT, "tab"):
            parts.append("\t")
        elif name == (_TEXT, "line-break"):
            parts.append("\n")
        elif name == (_TEXT, "p"):  # in a table cell or a text box: paragraphs apart
            parts.append(" " + _odt_text(child) + " ")
        else:
            parts.append(_odt_text(child))
    return "".join(parts)


def _paragraph_blocks(paragraphs: Iterable[_Paragraph]) -> list[Block]:
    """One block per paragraph of body text, numbered as the module docstring says."""
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []
    number = 0
    for paragraph in paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        number += 1
        if paragraph.level is None:
            headings = tuple(title for _, title in stack)
            blocks.append(Block(text, number, number, None, headings))
            continue
        while stack and stack[-1][0] >= paragraph.level:
            stack.pop()
        stack.append((paragraph.level, " ".join(text.split())))
    return blocks


def pptx_blocks(data: bytes) -> tuple[list[Block], str]:
    """A presentation's text boxes, tables and notes, slide by slide, and its title."""
    open_package(data, ".pptx").close()
    import pptx

    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        blocks: list[Block] = []
        first_title = ""
        for number, slide in enumerate(presentation.slides, start=1):
            title_shape = slide.shapes.title
            title = ""
            if title_shape is not None and title_shape.has_text_frame:
                title = " ".join(title_shape.text_frame.text.split())
            first_title = first_title or title
            headings = (title,) if title else ()
            others = [shape for shape in slide.shapes if shape.shape_id != _id(title_shape)]
            for text in _shape_texts(others):
                blocks.append(Block(text, None, None, number, headings))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = _frame_text(slide.notes_slide.notes_text_frame.text)
                if notes:
                    blocks.append(Block(notes, None, None, number, (*headings, _NOTES)))
        title = presentation.core_properties.title or first_title
    except Exception as error:
        raise damaged(".pptx", error) from None
    return blocks, title


def _id(shape: BaseShape | None) -> int | None:
    return None if shape is None else shape.shape_id


def _shape_texts(shapes: Iterable[BaseShape]) -> Iterator[str]:
    """The text of each shape with text, in reading order (top to bottom, left to right);
    a group's shapes in their own order within it."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    def position(shape: BaseShape) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=position):
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shape_texts(shape.shapes)  # type: ignore[attr-defined]
        elif shape.has_text_frame:
            text = _frame_text(shape.text_frame.text)  # type: ignore[attr-defined]
            if text:
                yield text
        elif getattr(shape, "has_table", False):
            rows = []
            for row in shape.table.rows:  # type: ignore[attr-defined]
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                rows.append(" | ".join(cell for cell in cells if cell))
            text = "\n".join(row for row in rows if row)
            if text:
                yield text


def _frame_text(text: str) -> str:
    """A text frame's text: paragraphs on their lines (a line break inside one is a vertical
    tab in python-pptx), without blank lines."""
    lines = (line.strip() for line in text.replace("\v", "\n").split("\n"))
    return "\n".join(line for line in lines if line)
