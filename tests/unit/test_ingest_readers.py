"""Tests for assistant.ingest.readers: formats, headings, line numbers, pages and refusals.

Line numbers are checked against the source itself: a block's text must be found in the lines
it names, so an off-by-one shows up as a failure rather than as a wrong citation later.
"""

from __future__ import annotations

import codecs
import functools
import html
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from assistant.errors import InputError
from assistant.ingest.blocks import Block
from assistant.ingest.readers import (
    Document,
    UnreadableFile,
    decode_text,
    detect_format,
    read_documents,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "corpora" / "sample"


def read(name: str, content: str | bytes) -> list[Document]:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return list(read_documents(Path("/docs") / name, data, "file-hash"))


def read_one(name: str, content: str | bytes) -> Document:
    (document,) = read(name, content)
    return document


def source_lines(content: str) -> list[str]:
    return content.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff").split("\n")


def assert_exact_lines(document: Document, content: str) -> None:
    """Line-based formats: a block's text is exactly its source lines."""
    lines = source_lines(content)
    for block in document.blocks:
        assert block.start_line is not None and block.end_line is not None
        assert 1 <= block.start_line <= block.end_line <= len(lines)
        assert block.text == "\n".join(lines[block.start_line - 1 : block.end_line]), block


def visible_words(markup: str) -> list[str]:
    return html.unescape(re.sub(r"<[^>]*>", " ", markup)).split()


def assert_html_lines(document: Document, content: str) -> None:
    """HTML: every word of a block is on its lines, which start and end with its words."""
    lines = source_lines(content)
    for block in document.blocks:
        assert block.start_line is not None and block.end_line is not None
        region = visible_words("\n".join(lines[block.start_line - 1 : block.end_line]))
        words = block.text.split()
        assert all(word in " ".join(region) for word in words), block
        first = visible_words(lines[block.start_line - 1])
        last = visible_words(lines[block.end_line - 1])
        assert first and words[0] in " ".join(first), block
        assert last and words[-1] in " ".join(last), block


def headings_of(document: Document) -> dict[str, tuple[str, ...]]:
    """First line of each block -> its heading path."""
    return {block.text.split("\n")[0]: block.headings for block in document.blocks}


# ------------------------------------------------------------------------------------------
# Formats, decoding and refusals
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("notes.md", "markdown"),
        ("NOTES.MD", "markdown"),
        ("page.markdown", "markdown"),
        ("guide.rst", "rst"),
        ("index.rst.txt", "rst"),
        ("page.html", "html"),
        ("page.htm", "html"),
        ("paper.pdf", "pdf"),
        ("corpus.jsonl", "jsonl"),
        ("readme.txt", "text"),
        ("main.py", "code"),
        ("query.sql", "code"),
        ("photo.png", None),
        ("Makefile", None),
    ],
)
def test_detect_format(name: str, expected: str | None) -> None:
    assert detect_format(Path(name)) == expected


def test_decode_text_normalises_line_ends_and_drops_bom() -> None:
    assert decode_text(codecs.BOM_UTF8 + b"a\r\nb\rc\nd") == "a\nb\nc\nd"


def test_decode_text_reads_utf16_with_bom() -> None:
    assert decode_text("h\u00e9llo\r\nworld".encode("utf-16")) == "h\u00e9llo\nworld"


def test_decode_text_refuses_binary() -> None:
    with pytest.raises(UnreadableFile, match="binary"):
        decode_text(b"text\x00more")
    with pytest.raises(UnreadableFile, match="binary"):
        decode_text(b"x" * 20_000 + b"\x00")  # a NUL late in the file counts too


def test_decode_text_reads_utf32_with_bom() -> None:
    assert decode_text("h\u00e9llo\nworld".encode("utf-32")) == "h\u00e9llo\nworld"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("first line\ncaf\u00e9", "latin-1"),
        ("Le caf\u00e9 est tr\u00e8s bon \u00e0 Paris, o\u00f9 l'\u00e9t\u00e9 dure.", "latin-1"),
        ("Gr\u00fc\u00dfe aus M\u00fcnchen, sch\u00f6ne Stra\u00dfe \u20ac5", "cp1252"),
        ("It\u2019s \u201cquoted\u201d \u2014 A\u00e7\u00e3o, cora\u00e7\u00e3o, "
         "n\u00e3o?", "cp1252"),
        ("col\u00b7lecci\u00f3, \u00bfQu\u00e9 tal? 1\u00bd cups at 20\u00b0C", "latin-1"),
        ("\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440, \u044d\u0442\u043e "
         "\u0442\u0435\u0441\u0442 \u043a\u043e\u0434\u0438\u0440\u043e\u0432\u043a\u0438",
         "cp1251"),
        ("P\u0159\u00edli\u0161 \u017elu\u0165ou\u010dk\u00fd k\u016f\u0148 "
         "\u00fap\u011bl \u010f\u00e1belsk\u00e9 \u00f3dy.", "cp1250"),
        ("\u3053\u3093\u306b\u3061\u306f\u4e16\u754c\u3001\u3053\u308c\u306f"
         "\u30c6\u30b9\u30c8\u3067\u3059\u3002", "shift_jis"),
        ("Hello world,\r\nsaid the caf\u00e9.", "utf-16-le"),  # no byte-order mark
        ("Hello world,\nsaid the caf\u00e9.", "utf-16-be"),
        ("Hi", "utf-16-le"),
    ],
)  # fmt: skip
def test_decode_text_reads_other_encodings(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding)) == text.replace("\r\n", "\n")


def test_decode_text_names_the_bad_byte_when_no_encoding_fits() -> None:
    data = b"first line\n" + bytes(range(0x80, 0x100)) + bytes(range(1, 9)) * 20
    with pytest.raises(UnreadableFile, match=r"unknown encoding.*0x80 on line 2.*convert it"):
        decode_text(data)


@pytest.mark.parametrize("name", ["notes.txt", "notes.md", "notes.rst", "notes.py", "page.html"])
def test_every_text_format_reads_latin1_and_utf16(name: str) -> None:
    body = "Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade."
    content = {
        "notes.md": f"# R\u00e9sum\u00e9\n\n{body}\n",
        "notes.rst": f"R\u00e9sum\u00e9\n======\n\n{body}\n",
        "notes.py": f"# {body}\nprint('\u00e9')\n",
        "page.html": f"<h1>R\u00e9sum\u00e9</h1><p>{body}</p>",
    }.get(name, f"{body}\n")
    for encoding in ("latin-1", "utf-16-le", "utf-16"):
        document = read_one(name, content.encode(encoding))
        assert body in document.text, encoding
        if name != "notes.txt" and name != "notes.py":
            assert document.blocks[0].headings == ("R\u00e9sum\u00e9",)


def test_unreadable_file_is_a_user_error() -> None:
    assert issubclass(UnreadableFile, InputError)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "empty file"),
        ("blank.txt", b"  \n\n\t\n", "empty file"),
        ("bom.md", codecs.BOM_UTF8, "empty file"),
        ("blank.pdf", b"", "empty file"),
        ("image.png", b"\x89PNG", r"^unsupported type \(\.png\)$"),
        ("old.doc", b"\xd0\xcf", r"^unsupported type \(\.doc\): save it as \.docx$"),
        ("deck.PPT", b"\xd0\xcf", r"save it as \.pptx$"),
        ("Makefile", b"all:", "no extension"),
        ("data.txt", b"abc\x00\x01\x02", "binary"),
        ("only-heading.md", b"# Title\n", "no text found"),
    ],
)
def test_refusals_say_why(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFile, match=reason):
        read(name, data)


def test_document_identity_and_text() -> None:
    document = read_one("notes.md", "# Notes\n\nFirst.\n\nSecond.\n")
    assert document.key == document.source == str(Path("/docs/notes.md"))
    assert document.format == "markdown"
    assert document.content_hash == "file-hash"
    assert document.text == "First.\n\nSecond."


# ------------------------------------------------------------------------------------------
# Plain text and source code
# ------------------------------------------------------------------------------------------


def test_text_paragraphs_and_line_numbers() -> None:
    content = "\n\nFirst paragraph\nstill first.\n\n\n  Second, indented.\n   \nThird.\n"
    document = read_one("notes.txt", content)
    assert [(b.start_line, b.end_line) for b in document.blocks] == [(3, 4), (7, 7), (9, 9)]
    assert document.title == "notes"
    assert all(block.headings == () for block in document.blocks)
    assert_exact_lines(document, content)


def test_crlf_and_bom_keep_line_numbers() -> None:
    lf = "# Title\n\nOne.\n\nTwo\nlines.\n"
    unix = read_one("a.md", lf)
    windows = read_one("a.md", codecs.BOM_UTF8 + lf.replace("\n", "\r\n").encode())
    assert unix.blocks == windows.blocks
    assert windows.title == "Title"
    assert windows.blocks[1] == Block("Two\nlines.", 5, 6, None, ("Title",))


def test_source_code_blocks() -> None:
    content = (
        '"""Module docstring."""\n'
        "\n"
        "import os\n"
        "\n"
        "\n"
        "def main() -> None:\n"
        "    # a comment, not a heading\n"
        "    print(os.getcwd())\n"
    )
    document = read_one("tool.py", content)
    assert document.format == "code"
    assert document.title == "tool"
    assert [(b.start_line, b.end_line) for b in document.blocks] == [(1, 1), (3, 3), (6, 8)]
    assert all(block.headings == () for block in document.blocks)
    assert_exact_lines(document, content)


# ------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------


def test_markdown_atx_headings_nest_and_pop() -> None:
    content = (
        "# Guide\n"
        "\n"
        "Intro.\n"
        "\n"
        "## Install\n"
        "Run it.\n"
        "\n"
        "### On Linux ###\n"
        "\n"
        "Use apt.\n"
        "\n"
        "## Use\n"
        "\n"
        "Call it.\n"
        "\n"
        "# Appendix\n"
        "\n"
        "More.\n"
    )
    document = read_one("guide.md", content)
    assert document.title == "Guide"
    assert headings_of(document) == {
        "Intro.": ("Guide",),
        "Run it.": ("Guide", "Install"),
        "Use apt.": ("Guide", "Install", "On Linux"),
        "Call it.": ("Guide", "Use"),
        "More.": ("Appendix",),
    }
    assert_exact_lines(document, content)


def test_markdown_heading_edge_cases() -> None:
    content = "# C#\n\nAbout C#.\n\n#hashtag is text\n\n## Done ##\n\nEnd.\n"
    document = read_one("c.md", content)
    assert headings_of(document) == {
        "About C#.": ("C#",),
        "#hashtag is text": ("C#",),
        "End.": ("C#", "Done"),
    }


def test_markdown_fenced_code_is_not_structure() -> None:
    content = (
        "# Shell\n"
        "\n"
        "```bash\n"
        "# install the package\n"
        "pip install thing\n"
        "~~~\n"
        "# still code, a tilde line does not close a backtick fence\n"
        "value\n"
        "---\n"
        "```\n"
        "\n"
        "````\n"
        "```\n"
        "# inside a longer fence\n"
        "````\n"
        "\n"
        "After the code.\n"
    )
    document = read_one("shell.md", content)
    assert {block.headings for block in document.blocks} == {("Shell",)}
    assert document.blocks[0].text.startswith("```bash\n# install the package")
    assert "---" in document.blocks[0].text
    assert document.blocks[-1].text == "After the code."
    assert_exact_lines(document, content)


def test_markdown_setext_headings() -> None:
    content = (
        "Main Title\n"
        "==========\n"
        "\n"
        "Intro text.\n"
        "\n"
        "Section\n"
        "-------\n"
        "Body under section\n"
        "on two lines.\n"
        "\n"
        "- a list item\n"
        "---\n"
        "\n"
        "Tail.\n"
    )
    document = read_one("setext.md", content)
    assert document.title == "Main Title"
    assert headings_of(document) == {
        "Intro text.": ("Main Title",),
        "Body under section": ("Main Title", "Section"),
        "- a list item": ("Main Title", "Section"),  # a list item is never a setext title
        "Tail.": ("Main Title", "Section"),
    }
    assert not any("===" in b.text or "---" in b.text for b in document.blocks)
    assert_exact_lines(document, content)


def test_markdown_setext_title_on_two_lines_and_after_code() -> None:
    content = (
        "A title written\n"
        "on two lines\n"
        "=============\n"
        "\n"
        "```\n"
        "code\n"
        "```\n"
        "Below the code\n"
        "--------------\n"
        "Text.\n"
    )
    document = read_one("two.md", content)
    assert document.title == "A title written on two lines"
    assert [(b.text, b.start_line, b.headings) for b in document.blocks] == [
        ("```\ncode\n```", 5, ("A title written on two lines",)),
        ("Text.", 10, ("A title written on two lines", "Below the code")),
    ]


def test_markdown_thematic_break_is_not_a_heading() -> None:
    content = "# Top\n\nAbove.\n\n---\n\nBelow.\n\n***\n"
    document = read_one("hr.md", content)
    assert [(b.text, b.headings) for b in document.blocks] == [
        ("Above.", ("Top",)),
        ("Below.", ("Top",)),
    ]


def test_markdown_front_matter() -> None:
    content = (
        '---\ntitle: "Release Notes"\ndate: 2024-01-01\n---\n\nFirst line.\n\n## Fixes\n\nA fix.\n'
    )
    document = read_one("notes.md", content)
    assert document.title == "Release Notes"
    assert [(b.text, b.start_line, b.headings) for b in document.blocks] == [
        ("First line.", 6, ()),
        ("A fix.", 10, ("Fixes",)),
    ]


def test_markdown_toml_front_matter_and_no_title() -> None:
    document = read_one("toml.md", "+++\ndraft = true\n+++\n# Heading\n\nText.\n")
    assert document.title == "Heading"
    assert [(b.text, b.start_line) for b in document.blocks] == [("Text.", 6)]


def test_markdown_leading_rule_without_keys_is_not_front_matter() -> None:
    content = "---\n\nSome text.\n\n---\n"
    document = read_one("rules.md", content)
    assert [(b.text, b.start_line) for b in document.blocks] == [("Some text.", 3)]


# ------------------------------------------------------------------------------------------
# reStructuredText
# ------------------------------------------------------------------------------------------


def test_rst_two_character_title_with_short_underline() -> None:
    content = "Metrics\n=======\n\nIntro.\n\nF1\n~~\n\nHarmonic mean.\n\nEM\n~~~~\n\nExact.\n"
    document = read_one("metrics.rst", content)
    assert headings_of(document) == {
        "Intro.": ("Metrics",),
        "Harmonic mean.": ("Metrics", "F1"),
        "Exact.": ("Metrics", "EM"),
    }
    assert_exact_lines(document, content)


def test_rst_levels_follow_first_appearance_of_styles() -> None:
    content = (
        "=====\n"
        "Title\n"
        "=====\n"
        "\n"
        "Top text.\n"
        "\n"
        "Part\n"
        "====\n"
        "\n"
        "Part text.\n"
        "\n"
        "Sub\n"
        "---\n"
        "\n"
        "Sub text.\n"
        "\n"
        "Other part\n"
        "==========\n"
        "\n"
        "Other text.\n"
    )
    document = read_one("levels.rst", content)
    assert document.title == "Title"
    assert headings_of(document) == {
        "Top text.": ("Title",),
        "Part text.": ("Title", "Part"),
        "Sub text.": ("Title", "Part", "Sub"),
        "Other text.": ("Title", "Other part"),
    }
    assert_exact_lines(document, content)


def test_rst_things_that_only_look_like_titles() -> None:
    content = (
        "Guide\n"
        "=====\n"
        "\n"
        "A line longer than its underline\n"
        "--\n"
        "\n"
        "--\n"
        "\n"
        "Paragraph first line\n"
        "second line\n"
        "-----------\n"
        "\n"
        "Before a transition.\n"
        "\n"
        "----------\n"
        "\n"
        "==  ==\n"
        "ab  cd\n"
        "==  ==\n"
        "\n"
        ".. note:: a directive\n"
        "---------------------\n"
        "\n"
        "- a bullet\n"
        "----------\n"
        "\n"
        "Example\n"
        "::\n"
        "\n"
        "    literal\n"
        "    -------\n"
    )
    document = read_one("tricky.rst", content)
    assert {block.headings for block in document.blocks} == {("Guide",)}
    texts = [block.text for block in document.blocks]
    assert "A line longer than its underline\n--" in texts
    assert "==  ==\nab  cd\n==  ==" in texts
    assert "Example\n::" in texts
    assert_exact_lines(document, content)


# ------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------

HTML_PAGE = """<!DOCTYPE html>
<html>
<head>
<title>Caf&eacute; &amp; Tea</title>
<style>p { color: red; }</style>
<script>var secret = "SCRIPTTEXT";</script>
</head>
<body>
<nav><a href="/">Home NAVTEXT</a> <h2>Menu</h2></nav>
<h1>Drinks</h1>
<p>Coffee &lt;hot&gt; &amp; tea&nbsp;are
   served <b>all</b> day.</p>
<div hidden>HIDDENTEXT</div>
<div style="display: none">ALSOHIDDEN</div>
<h2>Hot</h2>
<p>Espresso.</p>
<h3>Details</h3>
<ul>
  <li>Milk</li>
  <li>Sugar<br>and honey</li>
</ul>
<svg><title>SVGTITLE</title><text>SVGTEXT</text></svg>
<h2>Cold</h2>
<table><tr><th>Name</th><th>Price</th></tr><tr><td>Iced</td><td>3</td></tr></table>
<noscript>NOSCRIPTTEXT</noscript>
<p>It&#8217;s <input hidden> open.</p>
</body>
</html>
"""


def test_html_visible_text_headings_and_entities() -> None:
    document = read_one("menu.html", HTML_PAGE)
    assert document.title == "Caf\u00e9 & Tea"
    assert [(block.text, block.headings) for block in document.blocks] == [
        ("Coffee <hot> & tea are served all day.", ("Drinks",)),
        ("Espresso.", ("Drinks", "Hot")),
        ("Milk", ("Drinks", "Hot", "Details")),
        ("Sugar and honey", ("Drinks", "Hot", "Details")),
        ("Name Price", ("Drinks", "Cold")),
        ("Iced 3", ("Drinks", "Cold")),
        ("It\u2019s open.", ("Drinks", "Cold")),
    ]
    for hidden in ("SCRIPTTEXT", "NAVTEXT", "Menu", "HIDDEN", "SVG", "NOSCRIPT", "color"):
        assert hidden not in document.text


def test_html_line_numbers() -> None:
    document = read_one("menu.html", HTML_PAGE)
    lines = {block.text: (block.start_line, block.end_line) for block in document.blocks}
    assert lines["Coffee <hot> & tea are served all day."] == (11, 12)
    assert lines["Espresso."] == (16, 16)
    assert lines["Sugar and honey"] == (20, 20)
    assert_html_lines(document, HTML_PAGE)


def test_html_block_ends_on_its_last_word_not_on_the_next_tag() -> None:
    content = "<div>\n  first text\n\n\n  <p>second</p>\n</div>\n"
    document = read_one("x.html", content)
    assert [(b.text, b.start_line, b.end_line) for b in document.blocks] == [
        ("first text", 2, 2),
        ("second", 5, 5),
    ]


def test_html_without_closing_head_or_title() -> None:
    document = read_one("bare.html", "<html><head><meta charset=utf-8>\n<body><h1>Top</h1><p>Hi.")
    assert document.title == "Top"
    assert [(b.text, b.headings) for b in document.blocks] == [("Hi.", ("Top",))]


def test_html_headings_of_every_level() -> None:
    levels = "".join(f"<h{n}>H{n}</h{n}><p>under {n}</p>" for n in range(1, 7))
    document = read_one("levels.html", levels + "<h3>Again</h3><p>back</p>")
    paths = headings_of(document)
    assert paths["under 6"] == ("H1", "H2", "H3", "H4", "H5", "H6")
    assert paths["back"] == ("H1", "H2", "Again")


# ------------------------------------------------------------------------------------------
# PDF
# ------------------------------------------------------------------------------------------


@functools.cache
def load_pdf_maker() -> ModuleType:
    """scripts/make_sample_pdf.py, which builds small real PDFs with the standard library."""
    path = REPO / "scripts" / "make_sample_pdf.py"
    spec = importlib.util.spec_from_file_location("make_sample_pdf", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def tiny_pdf(paragraphs: int) -> bytes:
    maker = load_pdf_maker()
    source = "# Tiny Test Paper\n\n## Findings\n\n" + "\n\n".join(
        f"Marker{number} " + "filler words to fill the page " * 8 for number in range(paragraphs)
    )
    return bytes(maker.build_pdf(maker.parse_source(source)))


def test_pdf_pages_and_title() -> None:
    document = read_one("paper.pdf", tiny_pdf(40))
    assert document.format == "pdf"
    assert document.title == "Tiny Test Paper"
    pages = [block.page or 0 for block in document.blocks]
    assert pages == sorted(pages)
    assert pages[0] == 1 and pages[-1] >= 2
    assert all(block.start_line is None and block.end_line is None for block in document.blocks)
    marker_pages = {
        int(match): block.page or 0
        for block in document.blocks
        for match in re.findall(r"Marker(\d+)", block.text)
    }
    assert sorted(marker_pages) == list(range(40))  # every paragraph read, none twice
    assert [marker_pages[n] for n in range(40)] == sorted(marker_pages.values())


def test_sample_pdf() -> None:
    path = SAMPLE / "quantization-for-serving.pdf"
    (document,) = list(read_documents(path, path.read_bytes(), "h"))
    assert document.title == "Quantization for Serving Language Models"
    assert {block.page for block in document.blocks} >= {1, 2}
    assert all(block.text.strip() for block in document.blocks)


def test_pdf_damaged() -> None:
    with pytest.raises(UnreadableFile, match="PDF"):
        read("broken.pdf", b"%PDF-1.4\nthis is not a pdf at all")


def test_a_truncated_pdf_is_skipped_without_pypdf_writing_to_stderr(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cut.pdf").write_bytes(tiny_pdf(2)[:-20])  # no "%%EOF": pypdf logs, then fails
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "ingest", str(folder), "--json"],
        env={**os.environ, "ASSISTANT_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (skipped,) = json.loads(result.stdout)["files"]["skipped"]
    assert skipped["path"].endswith("cut.pdf") and skipped["reason"].startswith("unreadable PDF")
    assert "EOF marker" not in result.stderr


def test_pdf_without_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scanned pages: tests/unit/test_ingest_ocr.py."""
    import pypdf

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # the OCR extra is absent
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(UnreadableFile) as raised:
        read("scan.pdf", buffer.getvalue())
    assert str(raised.value) == (
        "scanned PDF: no text layer (OCR is not installed: pip install 'assistant[ocr]')"
    )


def _encrypted(user_password: str) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(tiny_pdf(2)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_pdf_encrypted_with_a_password_is_refused() -> None:
    with pytest.raises(UnreadableFile, match="encrypted"):
        read("secret.pdf", _encrypted("secret"))


def test_pdf_encrypted_only_against_editing_is_read() -> None:
    document = read_one("locked.pdf", _encrypted(""))
    assert "Marker1" in document.text


# ------------------------------------------------------------------------------------------
# BEIR JSONL
# ------------------------------------------------------------------------------------------


def jsonl(*rows: object) -> str:
    return "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n"


def test_jsonl_rows_are_documents() -> None:
    content = jsonl(
        {"_id": "d1", "title": "First", "text": "Alpha text."},
        "",
        {"_id": 7, "text": "Numbered id, no title.", "metadata": {}},
        {"_id": "d3", "title": "Title only", "text": ""},
        {"_id": "d4", "title": "", "text": "  "},
    )
    documents = read("corpus.jsonl", content)
    path = str(Path("/docs/corpus.jsonl"))
    assert [(d.key, d.source, d.title, d.format) for d in documents] == [
        (f"{path}#d1", path, "First", "jsonl"),
        (f"{path}#7", path, "7", "jsonl"),
        (f"{path}#d3", path, "Title only", "jsonl"),
    ]  # d4 has nothing to retrieve
    assert [d.blocks for d in documents] == [
        (Block("Alpha text.", 1, 1, None, ("First",)),),
        (Block("Numbered id, no title.", 3, 3, None, ()),),
        (Block("Title only", 4, 4, None, ("Title only",)),),
    ]
    hashes = {d.content_hash for d in documents}
    assert len(hashes) == 3 and "file-hash" not in hashes  # one hash per row


def test_jsonl_row_hash_changes_only_with_its_row() -> None:
    before = read("c.jsonl", jsonl({"_id": "a", "text": "one"}, {"_id": "b", "text": "two"}))
    after = read("c.jsonl", jsonl({"_id": "a", "text": "one"}, {"_id": "b", "text": "2"}))
    assert before[0].content_hash == after[0].content_hash
    assert before[1].content_hash != after[1].content_hash


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ('{"_id": "x", "text": ', "invalid JSON"),
        ('["_id", "text"]', "expected an object with _id and text"),
        ('{"text": "no id"}', "expected an object with _id and text"),
        ('{"_id": "x"}', "expected an object with _id and text"),
        ('{"_id": "", "text": "t"}', "_id must be"),
        ('{"_id": null, "text": "t"}', "_id must be"),
        ('{"_id": "x", "text": 5}', "text and title must be strings"),
        ('{"_id": "x", "text": "t", "title": ["a"]}', "text and title must be strings"),
        ('{"_id": "d1", "text": "again"}', r"duplicate _id 'd1' \(first on line 1\)"),
    ],
)
def test_jsonl_bad_line_names_file_and_line(bad_row: str, reason: str) -> None:
    content = jsonl({"_id": "d1", "text": "fine"}, "", bad_row)
    with pytest.raises(UnreadableFile, match=rf"^corpus\.jsonl line 3: {reason}"):
        read("corpus.jsonl", content)


def test_jsonl_without_any_text() -> None:
    with pytest.raises(UnreadableFile, match="no text found"):
        read("empty.jsonl", jsonl({"_id": "a", "text": ""}))


# ------------------------------------------------------------------------------------------
# The sample corpus
# ------------------------------------------------------------------------------------------

TEXT_SAMPLES = sorted(path for path in SAMPLE.iterdir() if path.suffix != ".pdf")


@pytest.mark.parametrize("path", TEXT_SAMPLES, ids=lambda path: path.name)
def test_sample_corpus_blocks_point_at_their_lines(path: Path) -> None:
    content = path.read_text(encoding="utf-8")
    (document,) = list(read_documents(path, path.read_bytes(), "h"))
    assert document.blocks and document.title
    if document.format == "html":
        assert_html_lines(document, content)
    else:
        assert_exact_lines(document, content)
    if document.format in ("markdown", "rst", "html"):
        assert all(block.headings for block in document.blocks)
        assert all(block.headings[0] == document.title for block in document.blocks)


def test_html_pre_keeps_lines_and_indentation() -> None:
    content = (
        "<h1>Guide</h1>\n<p>Run   this:</p>\n<pre>\ndef add(a, b):\n    return a + b\n\n"
        "print(add(1, 2))\n</pre>\n<p>After   the   code.</p>\n"
    )
    document = read_one("x.html", content)
    assert [(b.text, b.start_line, b.end_line) for b in document.blocks] == [
        ("Run this:", 2, 2),
        ("def add(a, b):\n    return a + b\n\nprint(add(1, 2))", 4, 7),
        ("After the code.", 9, 9),
    ]
    code = document.blocks[1]
    source = content.split("\n")
    for offset, line in enumerate(code.text.split("\n")):  # line i of the text is line start + i
        assert source[code.start_line - 1 + offset] == line
