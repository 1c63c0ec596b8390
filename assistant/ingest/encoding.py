"""The text of a file's bytes, in whatever encoding it was written.

UTF-8 (with or without a byte-order mark) is the norm and the fast path; UTF-32 and UTF-16 are
read by their byte-order mark, as Windows tools write one. Files in any other encoding were
written by older tools: Windows code pages (cp1252 in the West, cp1251 for Cyrillic, Shift
JIS...), Latin-1, or UTF-16 without its byte-order mark. `guess_text` finds which:

- Western text is taken as cp1252 (a superset of Latin-1's letters) when it reads as Western
  text: accented letters a minority, and no symbol in the middle of a word ("Za¿ó³æ" is Polish
  in another code page). `charset-normalizer` alone often prefers cp1250 or a Mac code page for
  short French or German text ("très" becomes "trčs"), because all of them look clean.
- Anything else goes to `charset-normalizer`, which ranks code pages by how garbled each
  decoding looks and which language it resembles.
- UTF-16 and UTF-32 without a byte-order mark are recognised by their zero bytes (charset-
  normalizer takes short binary data for UTF-16) and accepted only for mostly-ASCII text.

Binary data, and text no encoding fits, raise `UnreadableFile` with the reason.
"""

from __future__ import annotations

import codecs
import re

from assistant.errors import UnreadableFile

_WIDE_ENCODINGS = ("utf-32-le", "utf-32-be", "utf-16-le", "utf-16-be")
# Control characters other than tabs and line ends: a sign of binary data, not text.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_LETTER = re.compile(r"[^\W\d_]")
_ACCENTED_LETTER = re.compile(r"(?![A-Za-z])[^\W\d_]")
# A Latin-1 symbol between two letters: a letter of another code page. The middle dot (Catalan
# "l·l") and the acute accent (a stray apostrophe, "it´s") are left out.
_SYMBOL_IN_WORD = re.compile(
    r"(?<=[^\W\d_])[\xa0-\xa9\xab-\xb3\xb5\xb6\xb8-\xb9\xbb-\xbf](?=[^\W\d_])"
)
_MOST_ACCENTED = 0.4  # in Western languages, far fewer letters than this carry an accent


def decode_text(data: bytes) -> str:
    """The text of a file's bytes with "\\n" line ends, or `UnreadableFile` for binary data.

    The encoding is found as the module docstring says.
    """
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        text = _decode_marked(data, "utf-32")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = _decode_marked(data, "utf-16")
    elif b"\x00" in data:  # binary, or UTF-16 without its mark ("a\x00b\x00" is valid UTF-8)
        guessed = guess_text(data)
        if guessed is None:
            raise UnreadableFile("binary file (contains NUL bytes)")
        text = guessed[0]
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            guessed = guess_text(data)
            if guessed is None:
                line = data.count(b"\n", 0, error.start) + 1
                raise UnreadableFile(
                    f"text in an unknown encoding (not UTF-8: byte 0x{data[error.start]:02X} "
                    f"on line {line}, and no other encoding fits); convert it to UTF-8"
                ) from None
            text = guessed[0]
    if "\x00" in text:
        raise UnreadableFile("binary file (contains NUL characters)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_marked(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        name = encoding.upper()
        raise UnreadableFile(f"not valid {name} despite its byte-order mark") from None


def guess_text(data: bytes) -> tuple[str, str] | None:
    """(text, encoding name) for bytes that are not UTF-8, or None when no encoding fits."""
    if b"\x00" in data:
        return _wide_text(data)
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and _reads_as_western(western):
        return western, "cp1252"
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        return None
    return data.decode(best.encoding), best.encoding


def _reads_as_western(text: str) -> bool:
    letters = sum(1 for _ in _LETTER.finditer(text))
    accented = sum(1 for _ in _ACCENTED_LETTER.finditer(text))
    if accented > letters * _MOST_ACCENTED:
        return False  # Cyrillic, Greek, Hebrew... seen through the wrong code page
    return _SYMBOL_IN_WORD.search(text) is None and _CONTROL.search(text) is None


def _wide_text(data: bytes) -> tuple[str, str] | None:
    """UTF-32 or UTF-16 without a byte-order mark: the decoding that gives mostly-ASCII text
    without control characters. Binary data fails one of these tests."""
    for encoding in _WIDE_ENCODINGS:
        if len(data) % (4 if encoding.startswith("utf-32") else 2):
            continue
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _CONTROL.search(text) is None and len(text.encode("ascii", "ignore")) * 2 >= len(text):
            return text, encoding
    return None
