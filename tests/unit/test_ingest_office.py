"""Tests for assistant.ingest.office and assistant.ingest.ebooks: Word, OpenDocument, PowerPoint
and EPUB files, made here with the libraries that read them, down to the locations a citation
shows ("paragraphs 4-5", "slide 2", "chapter 3") and the reason a damaged file is skipped."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assistant.index.passage import Passage
from assistant.ingest.blocks import Block
from assistant.ingest.chunking import chunk_document
from assistant.ingest.readers import Document, UnreadableFile, detect_format, read_documents


def read_one(name: str, data: bytes) -> Document:
    (document,) = read_documents(Path("/docs") / name, data, "file-hash")
    return document


def location(name: str, block: Block) -> str:
    """How a citation of this block shows where it is."""
    passage = Passage(0, block.text, f"/docs/{name}", block.start_line, block.end_line,
                      block.page, " > ".join(block.headings), 1.0)  # fmt: skip
    return passage.location_as(name)


def words(texts: list[str]) -> list[int]:
    return [len(text.split()) for text in texts]


# ------------------------------------------------------------------------------------------
# Word (.docx)
# ------------------------------------------------------------------------------------------


def make_docx(title: str = "") -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading("Annual Report", 0)  # paragraph 1 (the Title style)
    document.add_paragraph("Sales grew in every region.")  # 2
    document.add_heading("Methods", 1)  # 3
    paragraph = document.add_paragraph("We counted ")  # 4
    paragraph.add_run("invoices").bold = True
    paragraph.add_run(" by hand.")
    document.add_paragraph("")  # empty: not counted
    table = document.add_table(rows=2, cols=2)  # rows 5 and 6
    for row, values in zip(table.rows, [("Region", "Growth"), ("North", "12%")], strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_heading("Caveats", 2)  # 7
    document.add_paragraph("Returns were\nnot counted.")  # 8, with a line break inside
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_paragraphs_are_numbered_under_their_headings() -> None:
    document = read_one("report.docx", make_docx())
    assert (document.format, document.title) == ("docx", "Annual Report")
    assert document.blocks == (
        Block("Sales grew in every region.", 2, 2, None, ("Annual Report",)),
        Block("We counted invoices by hand.", 4, 4, None, ("Annual Report", "Methods")),
        Block("Region | Growth", 5, 5, None, ("Annual Report", "Methods")),
        Block("North | 12%", 6, 6, None, ("Annual Report", "Methods")),
        Block("Returns were\nnot counted.", 8, 8, None, ("Annual Report", "Methods", "Caveats")),
    )
    assert location("report.docx", document.blocks[1]) == "report.docx paragraph 4"


def test_docx_keeps_tracked_insertions_and_drops_deletions() -> None:
    import docx
    from docx.oxml import OxmlElement

    document = docx.Document()
    paragraph = document.add_paragraph("The budget is ")
    for change, text_tag, text in [("w:del", "w:delText", "ten"), ("w:ins", "w:t", "twelve")]:
        wrapper, run, piece = OxmlElement(change), OxmlElement("w:r"), OxmlElement(text_tag)
        piece.text = text
        run.append(piece)
        wrapper.append(run)
        paragraph._p.append(wrapper)
    paragraph.add_run(" euros.")
    buffer = io.BytesIO()
    document.save(buffer)
    (block,) = read_one("draft.docx", buffer.getvalue()).blocks
    assert block.text == "The budget is twelve euros."


def test_docx_title_from_its_properties() -> None:
    assert read_one("report.docx", make_docx(title="FY 2024")).title == "FY 2024"


def test_docx_heading_by_outline_level_in_a_custom_style() -> None:
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    style = document.styles.add_style("Kapitel", WD_STYLE_TYPE.PARAGRAPH)
    outline = OxmlElement("w:outlineLvl")
    outline.set(qn("w:val"), "0")
    style.element.get_or_add_pPr().append(outline)
    document.add_paragraph("Einleitung", style="Kapitel")
    document.add_paragraph("Der erste Absatz.")
    buffer = io.BytesIO()
    document.save(buffer)
    (block,) = read_one("bericht.docx", buffer.getvalue()).blocks
    assert block == Block("Der erste Absatz.", 2, 2, None, ("Einleitung",))


def test_docx_reads_content_controls_but_not_a_table_of_contents() -> None:
    import docx
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    for gallery, text in [("Table of Contents", "Contents 1"), (None, "Inside a control.")]:
        control, content = OxmlElement("w:sdt"), OxmlElement("w:sdtContent")
        if gallery:
            properties, part, kind = (OxmlElement(tag) for tag in
                                      ("w:sdtPr", "w:docPartObj", "w:docPartGallery"))  # fmt: skip
            kind.set(qn("w:val"), gallery)
            part.append(kind)
            properties.append(part)
            control.append(properties)
        content.append(document.add_paragraph(text)._p)  # moved from the body into the control
        control.append(content)
        document.element.body.insert(len(document.element.body) - 1, control)
    document.add_paragraph("After it.")
    buffer = io.BytesIO()
    document.save(buffer)
    blocks = read_one("form.docx", buffer.getvalue()).blocks
    assert [(block.text, block.start_line) for block in blocks] == [
        ("Inside a control.", 1),
        ("After it.", 2),
    ]


def test_chunks_of_a_docx_cite_a_paragraph_range() -> None:
    document = read_one("report.docx", make_docx())
    chunks = chunk_document(document, words, target=50, overlap=0, limit=50)
    methods = next(chunk for chunk in chunks if chunk.heading == "Annual Report > Methods")
    passage = Passage(0, methods.text, "/docs/report.docx", methods.start_line,
                      methods.end_line, methods.page, methods.heading, 1.0)  # fmt: skip
    assert (methods.start_line, methods.end_line) == (4, 6)
    assert passage.location == "/docs/report.docx paragraphs 4-6"


# ------------------------------------------------------------------------------------------
# OpenDocument text (.odt)
# ------------------------------------------------------------------------------------------


def make_odt() -> bytes:
    from odf import dc, table
    from odf.opendocument import OpenDocumentText
    from odf.text import H, LineBreak, List, ListItem, P, S

    document = OpenDocumentText()
    document.meta.addElement(dc.Title(text="Field Notes"))
    document.text.addElement(H(outlinelevel=1, text="Birds"))  # 1
    paragraph = P(text="Two")  # 2
    paragraph.addElement(S(c=2))
    paragraph.addText("herons seen.")
    paragraph.addElement(LineBreak())
    paragraph.addText("Near the lake.")
    document.text.addElement(paragraph)
    document.text.addElement(P(text=""))  # empty: not counted
    listing = List()
    item = ListItem()
    item.addElement(P(text="A kingfisher."))  # 3
    listing.addElement(item)
    document.text.addElement(listing)
    document.text.addElement(H(outlinelevel=2, text="Counts"))  # 4
    grid = table.Table()
    row = table.TableRow()  # 5
    for value in ("Heron", "2"):
        cell = table.TableCell()
        cell.addElement(P(text=value))
        row.addElement(cell)
    grid.addElement(row)
    document.text.addElement(grid)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_odt_paragraphs_lists_and_tables_under_their_headings() -> None:
    document = read_one("notes.odt", make_odt())
    assert (document.format, document.title) == ("odt", "Field Notes")
    assert document.blocks == (
        Block("Two  herons seen.\nNear the lake.", 2, 2, None, ("Birds",)),
        Block("A kingfisher.", 3, 3, None, ("Birds",)),
        Block("Heron | 2", 5, 5, None, ("Birds", "Counts")),
    )
    assert location("notes.odt", document.blocks[2]) == "notes.odt paragraph 5"


# ------------------------------------------------------------------------------------------
# PowerPoint (.pptx)
# ------------------------------------------------------------------------------------------


def make_pptx() -> bytes:
    import pptx
    from pptx.util import Inches

    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])  # title and content
    first.shapes.title.text = "Quarterly Review"
    first.placeholders[1].text = "Revenue up\nCosts flat"
    first.notes_slide.notes_text_frame.text = "Mention the new office."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])  # title only
    second.shapes.title.text = "Risks"
    lower = second.shapes.add_textbox(Inches(1), Inches(4), Inches(4), Inches(1))
    lower.text_frame.text = "Supply delays"
    upper = second.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1))
    upper.text_frame.text = "Currency swings"
    grid = second.shapes.add_table(2, 2, Inches(1), Inches(5), Inches(4), Inches(1)).table
    grid.cell(0, 0).text, grid.cell(0, 1).text = "Risk", "Owner"
    grid.cell(1, 0).text, grid.cell(1, 1).text = "Delays", "Ops"
    presentation.slides.add_slide(presentation.slide_layouts[6])  # blank: slide 3, no text
    fourth = presentation.slides.add_slide(presentation.slide_layouts[6])
    fourth.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1)).text_frame.text = "Q&A"
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def test_pptx_slides_are_pages_with_their_titles_as_headings() -> None:
    document = read_one("deck.pptx", make_pptx())
    assert (document.format, document.title) == ("pptx", "Quarterly Review")
    assert document.blocks == (
        Block("Revenue up\nCosts flat", None, None, 1, ("Quarterly Review",)),
        Block("Mention the new office.", None, None, 1, ("Quarterly Review", "Notes")),
        Block("Currency swings", None, None, 2, ("Risks",)),  # read top to bottom
        Block("Supply delays", None, None, 2, ("Risks",)),
        Block("Risk | Owner\nDelays | Ops", None, None, 2, ("Risks",)),
        Block("Q&A", None, None, 4, ()),  # slide numbers count the empty slide 3
    )
    assert location("deck.pptx", document.blocks[3]) == "deck.pptx slide 2"


def test_chunks_of_a_pptx_never_mix_slides_or_notes() -> None:
    document = read_one("deck.pptx", make_pptx())
    chunks = chunk_document(document, words, target=200, overlap=0, limit=200)
    assert [(chunk.page, chunk.heading) for chunk in chunks] == [
        (1, "Quarterly Review"),
        (1, "Quarterly Review > Notes"),
        (2, "Risks"),
        (4, ""),
    ]


# ------------------------------------------------------------------------------------------
# EPUB
# ------------------------------------------------------------------------------------------


def make_epub(drm: bool = False) -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("test-book")
    book.set_title("A Small Book")
    book.set_language("en")
    chapters = [
        epub.EpubHtml(
            title="Cover", file_name="cover.xhtml", content="<p>Cover text, by the author.</p>"
        ),
        epub.EpubHtml(file_name="image.xhtml", content='<img src="picture.png" alt=""/>'),
        epub.EpubHtml(
            title="The Voyage",
            file_name="one.xhtml",
            content="<h1>The Voyage</h1><p>The ship left at dawn.</p>"
            "<h2>Storm</h2><p>Waves rose.</p><script>var hidden = 1;</script>",
        ),
        epub.EpubHtml(
            title="Landfall", file_name="two.xhtml", content="<p>They reached the island.</p>"
        ),
    ]
    for chapter in chapters:
        book.add_item(chapter)
    book.toc = [chapters[2], chapters[3]]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    buffer = io.BytesIO()
    epub.write_epub(buffer, book)
    if not drm:
        return buffer.getvalue()
    return _with_member(
        buffer.getvalue(),
        "META-INF/encryption.xml",
        b'<encryption><EncryptedData><CipherData><CipherReference URI="EPUB/one.xhtml"/>'
        b"</CipherData></EncryptedData></encryption>",
    )


def _with_member(data: bytes, name: str, content: bytes | None) -> bytes:
    """The zip `data` with member `name` set to `content` (None: removed)."""
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(output, "w") as target:
        for member in source.infolist():
            if member.filename != name:
                target.writestr(member, source.read(member.filename))
        if content is not None:
            target.writestr(name, content)
    return output.getvalue()


def test_epub_chapters_are_pages_under_their_titles() -> None:
    document = read_one("book.epub", make_epub())
    assert (document.format, document.title) == ("epub", "A Small Book")
    assert document.blocks == (
        Block("Cover text, by the author.", None, None, 1, ("Cover",)),
        Block("The ship left at dawn.", None, None, 2, ("The Voyage",)),
        Block("Waves rose.", None, None, 2, ("The Voyage", "Storm")),
        Block("They reached the island.", None, None, 3, ("Landfall",)),
    )  # the navigation document and the picture-only page are not chapters
    assert location("book.epub", document.blocks[2]) == "book.epub chapter 2"


def test_epub_with_drm_is_skipped_with_the_reason() -> None:
    with pytest.raises(UnreadableFile, match=r"^DRM-protected \.epub"):
        read_one("locked.epub", make_epub(drm=True))


# ------------------------------------------------------------------------------------------
# Refusals: one clear reason, never a crash
# ------------------------------------------------------------------------------------------


def _truncated_docx() -> bytes:
    return make_docx()[:1500]


def _docx_without_its_body() -> bytes:
    return _with_member(make_docx(), "word/document.xml", None)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        (
            "plain.docx",
            b"just some text, not a zip",
            r"^damaged \.docx file \(not a zip archive\)$",
        ),
        ("cut.docx", _truncated_docx(), r"^damaged \.docx file"),
        ("hollow.docx", _docx_without_its_body(), r"^damaged \.docx file \(KeyError"),
        ("secret.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, r"^password-protected"),
        ("slides.pptx", b"PK\x03\x04 broken", r"^damaged \.pptx file"),
        ("notes.odt", b"not a zip", r"^damaged \.odt file"),
        ("book.epub", b"not a zip", r"^damaged \.epub file"),
        ("empty.docx", b"", r"^empty file$"),
    ],
)
def test_a_broken_package_gives_one_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFile, match=reason):
        read_one(name, data)


def test_an_encrypted_odt_says_it_needs_a_password() -> None:
    manifest = b'<manifest:manifest><manifest:encryption-data manifest:checksum="x"/>'
    data = _with_member(make_odt(), "META-INF/manifest.xml", manifest)
    with pytest.raises(UnreadableFile, match=r"^password-protected \.odt"):
        read_one("secret.odt", data)


def test_a_document_without_text_is_refused() -> None:
    import docx

    buffer = io.BytesIO()
    docx.Document().save(buffer)
    with pytest.raises(UnreadableFile, match="no text found"):
        read_one("blank.docx", buffer.getvalue())


@pytest.mark.parametrize(
    ("name", "format_name"),
    [("a.docx", "docx"), ("B.PPTX", "pptx"), ("c.odt", "odt"), ("d.epub", "epub")],
)
def test_package_formats_are_detected(name: str, format_name: str) -> None:
    assert detect_format(Path(name)) == format_name


# ------------------------------------------------------------------------------------------
# Through the command line
# ------------------------------------------------------------------------------------------


def test_ingest_and_search_show_slides_chapters_and_paragraphs(
    tmp_path: Path, model_cache: Path
) -> None:
    from assistant.cli.app import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.docx").write_bytes(make_docx())
    (docs / "notes.odt").write_bytes(make_odt())
    (docs / "deck.pptx").write_bytes(make_pptx())
    (docs / "book.epub").write_bytes(make_epub())
    (docs / "broken.docx").write_bytes(_truncated_docx())
    (docs / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    (docs / "latin.txt").write_bytes("Le café de la gare ouvre à sept heures.\n".encode("latin-1"))
    environment = {
        "ASSISTANT_HOME": str(tmp_path / "home"),
        "ASSISTANT_CACHE_DIR": str(model_cache),
        "COLUMNS": "200",
    }
    runner = CliRunner()

    def run(*arguments: str) -> Any:
        result = runner.invoke(app, list(arguments), env=environment)
        assert result.exit_code == 0, result.output
        return result

    summary = json.loads(run("ingest", str(docs), "--json").output)
    assert summary["added"] == 5
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["files"]["skipped"]}
    assert reasons["old.doc"] == "unsupported type (.doc): save it as .docx"
    assert reasons["broken.docx"].startswith("damaged .docx file")

    def top(query: str) -> str:
        return run("search", query, "-k", "1").output.splitlines()[0]

    assert "deck.pptx slide 2" in top("currency swings supply delays risks")
    assert "book.epub chapter 2" in top("the ship left at dawn on the voyage")
    assert "report.docx paragraph" in top("counted invoices by hand methods")
    assert "notes.odt paragraph" in top("herons seen near the lake")
    assert "latin.txt:1" in top("café de la gare")
