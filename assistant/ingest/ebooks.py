"""E-books (.epub) into blocks, chapter by chapter.

An EPUB is a zip of XHTML files read in the order of its spine. Each spine document with text
is a chapter: its body goes through the HTML reader (`markup.html_blocks`, so scripts, hidden
text and navigation are left out as for any web page), and its blocks are located by chapter
number, stored as the block's page ("chapter 3": the third part of the book with text, cover
and title pages included when they hold text). The chapter's title from the book's table of
contents (else its own title or first heading) heads each of its blocks, followed by the
headings inside the chapter. Line numbers inside a chapter's XHTML mean nothing to a reader of
the book, so they are dropped.
"""

from __future__ import annotations

import io
import posixpath
import re
import warnings
from typing import Any

from assistant.errors import UnreadableFile
from assistant.ingest.blocks import Block
from assistant.ingest.encoding import decode_text
from assistant.ingest.markup import html_blocks
from assistant.ingest.office import damaged, open_package

# A resource listed as encrypted: fonts are often "obfuscated" this way, which is harmless; an
# encrypted chapter means DRM.
_ENCRYPTED_URI = re.compile(rb'URI\s*=\s*["\']([^"\']+)["\']')
_DOCUMENT_SUFFIXES = (b".xhtml", b".html", b".htm", b".xml")


def epub_blocks(data: bytes) -> tuple[list[Block], str]:
    """The book's chapters as blocks (page = chapter number), and its title."""
    with open_package(data, ".epub") as package:
        try:
            encryption = package.read("META-INF/encryption.xml")
        except KeyError:
            encryption = b""
    if any(uri.lower().endswith(_DOCUMENT_SUFFIXES) for uri in _ENCRYPTED_URI.findall(encryption)):
        raise UnreadableFile("DRM-protected .epub (its chapters are encrypted)")
    from ebooklib import ITEM_DOCUMENT, epub

    try:
        with warnings.catch_warnings():  # ebooklib warns about its own future defaults
            warnings.simplefilter("ignore")
            book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
        titles = _toc_titles(book.toc, {})
        blocks: list[Block] = []
        chapter = 0
        for item_id, _linear in book.spine:
            item = book.get_item_with_id(item_id)
            if item is None or item.get_type() != ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
                continue
            # The file as stored: `get_content()` rebuilds it from a template, without its title.
            content = (
                item.content if isinstance(item.content, bytes) else str(item.content).encode()
            )
            try:
                chapter_blocks, own_title = html_blocks(decode_text(content))
            except UnreadableFile as error:
                raise UnreadableFile(f"chapter {item.get_name()}: {error}") from None
            if not chapter_blocks:
                continue
            chapter += 1
            title = titles.get(posixpath.normpath(item.get_name())) or own_title
            for block in chapter_blocks:
                blocks.append(Block(block.text, None, None, chapter, _under(title, block.headings)))
        found = book.get_metadata("DC", "title")
        book_title = str(found[0][0]) if found and found[0][0] else ""
    except UnreadableFile:
        raise
    except Exception as error:
        raise damaged(".epub", error) from None
    return blocks, book_title


def _toc_titles(entries: Any, titles: dict[str, str]) -> dict[str, str]:
    """{file: title} from the table of contents, the first entry of each file (the later ones
    point at sections inside it)."""
    for entry in entries:
        if isinstance(entry, tuple):  # (section, its entries)
            section, children = entry
            _add_title(titles, getattr(section, "href", None), getattr(section, "title", ""))
            _toc_titles(children, titles)
        else:
            _add_title(titles, getattr(entry, "href", None), getattr(entry, "title", ""))
    return titles


def _add_title(titles: dict[str, str], href: str | None, title: str | None) -> None:
    title = " ".join((title or "").split())
    if href and title:
        titles.setdefault(posixpath.normpath(href.split("#", 1)[0]), title)


def _under(title: str, headings: tuple[str, ...]) -> tuple[str, ...]:
    """The chapter title above the chapter's own headings, once (its first heading is often
    the same title)."""
    if not title or (headings and headings[0].casefold() == title.casefold()):
        return headings
    return (title, *headings)
