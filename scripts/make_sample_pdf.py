#!/usr/bin/env python3
"""Build the sample corpus's PDF from a plain-text source, using the standard library only.

The source is kept in the repo (scripts/sample_pdf_source.txt) so the PDF can be regenerated
and reviewed as text. Its markup is deliberately tiny:

    # Title                  the document title (first line; also the PDF's /Title)
    ## Section heading       a section heading
    - item                   a bullet item (wrapped with a hanging indent)
    any other lines          paragraph text; a blank line ends a paragraph

Output is a plain, uncompressed PDF 1.4 file: US Letter pages, the standard Helvetica and
Helvetica-Bold fonts (no embedding needed), one text line per Tj operator, greedy word wrap
measured with Helvetica's real glyph widths. Text must be ASCII; parentheses and backslashes
are escaped. The output is deterministic (no timestamps), so regenerating an unchanged source
gives a byte-identical file.

Usage:
    python scripts/make_sample_pdf.py [--source PATH] [--output PATH]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT / "scripts" / "sample_pdf_source.txt"
DEFAULT_OUTPUT = REPO_ROOT / "corpora" / "sample" / "quantization-for-serving.pdf"

PAGE_WIDTH, PAGE_HEIGHT = 612.0, 792.0  # US Letter, in points
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 72.0, 72.0, 72.0, 72.0
BULLET_INDENT = 14.0

# Glyph widths (1/1000 em) for ASCII 32..126, from Adobe's Helvetica and Helvetica-Bold AFM files.
# fmt: off
_HELVETICA = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
]
_HELVETICA_BOLD = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
]
# fmt: on


@dataclass(frozen=True)
class Style:
    font: str  # resource name: F1 regular, F2 bold
    size: float
    leading: float  # baseline-to-baseline distance


BODY = Style("F1", 11.0, 15.0)
HEADING = Style("F2", 13.0, 18.0)
TITLE = Style("F2", 18.0, 24.0)


@dataclass(frozen=True)
class Row:
    """One line of the page: text in a style, or a paragraph break."""

    style: Style
    text: str  # a paragraph break is a row whose text is a single space
    indent: float = 0.0
    bullet: bool = False  # draw a dash before this row
    keep_with_next: int = 0  # rows that must follow on the same page


@dataclass(frozen=True)
class Element:
    kind: str  # title | heading | paragraph | bullet
    text: str


def text_width(text: str, style: Style) -> float:
    widths = _HELVETICA_BOLD if style.font == "F2" else _HELVETICA
    return sum(widths[ord(char) - 32] for char in text) * style.size / 1000.0


def parse_source(source: str) -> list[Element]:
    """Turn the source markup into title, heading, paragraph and bullet elements."""
    elements: list[Element] = []
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            elements.append(Element("paragraph", " ".join(paragraph)))
            paragraph.clear()

    for number, raw in enumerate(source.splitlines(), start=1):
        line = raw.strip()
        bad = next((char for char in line if not 32 <= ord(char) <= 126), None)
        if bad is not None:
            raise ValueError(f"line {number}: non-ASCII character {bad!r}; keep the source ASCII")
        if not line:
            end_paragraph()
        elif line.startswith("## "):
            end_paragraph()
            elements.append(Element("heading", line[3:].strip()))
        elif line.startswith("# "):
            end_paragraph()
            elements.append(Element("title", line[2:].strip()))
        elif line.startswith("- "):
            end_paragraph()
            elements.append(Element("bullet", line[2:].strip()))
        elif elements and elements[-1].kind == "bullet" and not paragraph and raw.startswith("  "):
            # An indented line right after a bullet continues that bullet.
            elements[-1] = Element("bullet", f"{elements[-1].text} {line}")
        else:
            paragraph.append(line)
    end_paragraph()
    if not elements or elements[0].kind != "title":
        raise ValueError("the source must start with a '# Title' line")
    return elements


def wrap(text: str, style: Style, width: float) -> list[str]:
    """Greedy word wrap; a single word wider than the line is left to overflow."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and text_width(candidate, style) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def rows_of(elements: list[Element]) -> list[Row]:
    """Wrap every element into rows, with break rows between paragraphs.

    A paragraph break is drawn as one blank line holding a single space. The space is invisible,
    but it makes text extractors such as pypdf emit an empty line there, so readers that split
    extracted text on blank lines recover the paragraphs.
    """
    width = PAGE_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    paragraph_break = Row(BODY, " ", keep_with_next=3)
    rows: list[Row] = []
    previous = ""
    for element in elements:
        kind = element.kind
        if kind == "title":
            rows += [Row(TITLE, line) for line in wrap(element.text, TITLE, width)]
        elif kind == "heading":
            rows.append(paragraph_break)
            lines = wrap(element.text, HEADING, width)
            rows += [Row(HEADING, line, keep_with_next=2) for line in lines]
        else:
            # Paragraphs and lists start after a blank line, except right below a heading;
            # the items of one list follow each other directly.
            if previous not in ("heading", "title") and not (kind == previous == "bullet"):
                rows.append(paragraph_break)
            indent = BULLET_INDENT if kind == "bullet" else 0.0
            lines = wrap(element.text, BODY, width - indent)
            rows += [
                Row(BODY, line, indent, bullet=(kind == "bullet" and number == 0))
                for number, line in enumerate(lines)
            ]
        previous = kind
    return rows


def layout(elements: list[Element]) -> list[list[str]]:
    """Place rows on pages; return each page's content-stream operators."""
    rows = rows_of(elements)
    pages: list[list[str]] = [[]]
    top = PAGE_HEIGHT - MARGIN_TOP
    y = top
    for index, row in enumerate(rows):
        following = rows[index + 1 : index + 1 + row.keep_with_next]
        needed = row.style.leading + sum(r.style.leading for r in following)
        if y - needed < MARGIN_BOTTOM and y < top:
            pages.append([])
            y = top
        if row.text == " " and y == top:
            continue  # no paragraph break at the top of a page
        y -= row.style.leading
        ops = pages[-1]
        font = f"/{row.style.font} {row.style.size:g} Tf"
        if row.bullet:
            ops.append(f"BT {font} {MARGIN_LEFT + 2:g} {y:g} Td (-) Tj ET")
        x = MARGIN_LEFT + row.indent
        ops.append(f"BT {font} {x:g} {y:g} Td ({escape(row.text)}) Tj ET")
    return pages


def build_pdf(elements: list[Element]) -> bytes:
    """Serialize laid-out pages as a PDF with a correct cross-reference table."""
    pages = layout(elements)
    title = elements[0].text
    page_count = len(pages)
    # Object numbers: 1 catalog, 2 page tree, 3-4 fonts, 5 info, then (page, content) pairs.
    first_page = 6
    page_ids = [first_page + 2 * index for index in range(page_count)]

    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: (
            f"<< /Type /Pages /Kids [{' '.join(f'{pid} 0 R' for pid in page_ids)}] "
            f"/Count {page_count} >>"
        ).encode("ascii"),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: (
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold "
            b"/Encoding /WinAnsiEncoding >>"
        ),
        5: f"<< /Title ({escape(title)}) /Producer (scripts/make_sample_pdf.py) >>".encode("ascii"),
    }
    for page_id, operators in zip(page_ids, pages, strict=True):
        stream = ("\n".join(operators) + "\n").encode("ascii")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH:g} {PAGE_HEIGHT:g}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode("ascii")
        objects[page_id + 1] = (
            f"<< /Length {len(stream)} >>\nstream\n".encode("ascii") + stream + b"endstream"
        )

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode("ascii") + objects[number] + b"\nendobj\n"
    xref_at = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n".encode("ascii")
    out += b"0000000000 65535 f \n"
    for number in range(1, size):
        out += f"{offsets[number]:010d} 00000 n \n".encode("ascii")
    out += (
        f"trailer\n<< /Size {size} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref_at}\n%%EOF\n"
    ).encode("ascii")
    return bytes(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    try:
        elements = parse_source(args.source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"make_sample_pdf: {args.source}: {error}", file=sys.stderr)
        return 1
    data = build_pdf(elements)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    page_count = data.count(b"/Type /Page ")
    print(f"wrote {args.output} ({page_count} pages, {len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
