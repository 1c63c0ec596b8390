"""Markup readers: Markdown, reStructuredText and HTML into blocks under their headings.

Headings become each block's heading path; heading markup (underlines, overlines, `#` runs) is
blanked but keeps its line, so every block's line range names the real lines of the file. HTML
keeps only visible text (no scripts, styles, hidden elements or navigation chrome).
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser
from typing import ClassVar

from assistant.ingest.blocks import Block, sectioned_blocks

# The closing run of #s must follow a space: "# C#" is the heading "C#".
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+|$)(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s|>|\|)")  # list item, quote, table row
_FRONT_MATTER_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*[:=]")
_FRONT_MATTER_TITLE = re.compile(r"^title\s*[:=]\s*(.*?)\s*$")


def markdown_blocks(text: str) -> tuple[list[Block], str]:
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
    return sectioned_blocks(lines, headings), title


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


def rst_blocks(text: str) -> list[Block]:
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
    return sectioned_blocks(lines, headings)


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
        self._pre = 0  # depth of open <pre> elements: their whitespace is kept

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
        elif tag == "pre":
            self._flush()
            self._pre += 1
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
        elif tag == "pre" and self._pre:
            self._flush()
            self._pre -= 1
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
        if self._pre:  # code and other preformatted text keep their lines and indentation
            text = "\n".join(line.rstrip() for line in "".join(self._parts).strip("\n").split("\n"))
            text = text.rstrip()
        else:
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


def html_blocks(text: str) -> tuple[list[Block], str]:
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    return parser.blocks, " ".join(parser.title.split())
