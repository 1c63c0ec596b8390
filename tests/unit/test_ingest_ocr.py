"""Tests for assistant.ingest.ocr and the PDF reader's pages without a text layer: named as
needing OCR without the extra, read by OCR with it (those tests run only where the extra,
rapidocr-onnxruntime, is installed). The PDFs are real: a text page from
scripts/make_sample_pdf.py and a scanned page, an image of printed lines saved by Pillow."""

from __future__ import annotations

import io
import sys

import pytest

from assistant.errors import UnreadableFile
from assistant.ingest import ocr
from tests.unit.test_ingest_readers import read, read_one, tiny_pdf

SCANNED_LINES = ("The sourdough starter needs rye flour.", "Feed it twice a day.")
NEEDS_OCR = "not read: no text layer (OCR is not installed: pip install 'assistant[ocr]')"


def scanned_pdf(lines: tuple[str, ...] = SCANNED_LINES) -> bytes:
    """A one-page PDF that is only an image of these lines (a scan: no text layer)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1000, 120 + 80 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    for number, line in enumerate(lines):
        draw.text((40, 60 + 80 * number), line, font=font, fill=0)
    buffer = io.BytesIO()
    image.save(buffer, "PDF", resolution=150)
    return buffer.getvalue()


def mixed_pdf() -> tuple[bytes, int]:
    """A PDF of text pages with a scanned page after them; and that page's number."""
    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(tiny_pdf(2)))
    writer.append(io.BytesIO(scanned_pdf()))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue(), len(writer.pages)


@pytest.fixture
def without_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    """As where the extra is not installed (a module set to None cannot be imported)."""
    monkeypatch.setitem(sys.modules, ocr.PACKAGE, None)
    assert not ocr.available()


def test_page_numbers_are_described_in_runs() -> None:
    assert ocr.describe_pages([3]) == "page 3"
    assert ocr.describe_pages([7, 1, 2, 3, 9, 10]) == "pages 1-3, 7, 9-10"


def test_a_scanned_page_is_named_as_needing_ocr(without_ocr: None) -> None:
    data, scanned_page = mixed_pdf()
    document = read_one("mixed.pdf", data)
    assert document.notes == (f"page {scanned_page} {NEEDS_OCR}",)
    assert scanned_page not in {block.page for block in document.blocks}
    assert "Marker1" in document.text  # the text pages are read as before


def test_a_wholly_scanned_pdf_is_skipped_with_what_it_needs(without_ocr: None) -> None:
    with pytest.raises(UnreadableFile, match=r"^scanned PDF: no text layer \(OCR is not installed"):
        read("scan.pdf", scanned_pdf())


def test_a_scanned_page_is_read_by_ocr_with_the_extra() -> None:
    pytest.importorskip(ocr.PACKAGE)
    data, scanned_page = mixed_pdf()
    document = read_one("mixed.pdf", data)
    assert document.notes == (f"page {scanned_page} read by OCR (no text layer)",)
    scanned = [block for block in document.blocks if block.page == scanned_page]
    text = " ".join(block.text for block in scanned).lower()
    assert "sourdough starter needs rye flour" in text and "twice a day" in text

    (alone,) = read("scan.pdf", scanned_pdf())
    assert alone.title.lower().startswith("the sourdough starter")
    assert alone.notes == ("page 1 read by OCR (no text layer)",)
