"""Text from the images of scanned PDF pages, with the optional OCR extra (`assistant[ocr]`).

A scanned page has no text layer: its words are the pixels of an image. With the extra
installed (rapidocr-onnxruntime: PaddleOCR's detection and recognition models run by ONNX
Runtime, shipped inside the wheel, so nothing is downloaded at run time), `page_text` reads each
image of such a page, line by line in the order the OCR returns them (top to bottom, left to
right), with a blank line where a gap taller than a line separates two paragraphs. Without the
extra, the PDF reader reports which pages it could not read and how to read them (`HINT`).

Only the page's images are read, not the page as drawn: text drawn as vector outlines would need
the page rendered first, which this does not do. OCR takes seconds a page on a CPU, so it runs
only for pages without a text layer, and the engine is loaded once per process.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

PACKAGE = "rapidocr_onnxruntime"
HINT = "OCR is not installed: pip install 'assistant[ocr]'"
MIN_SCORE = 0.5  # recognised lines the OCR is less sure of are left out
MIN_IMAGE_PIXELS = 24  # images narrower or shorter than this (rules, bullets) hold no text


def available() -> bool:
    """Whether the OCR extra is installed."""
    return importlib.util.find_spec(PACKAGE) is not None


def page_text(page: Any) -> str:
    """The text OCR reads in the images of a pypdf page ("" when it finds none). An image that
    cannot be decoded is passed over (logged), so one bad image costs only its own text."""
    texts: list[str] = []
    for image_file in page.images:
        try:
            image = image_file.image
            if image is None or min(image.size) < MIN_IMAGE_PIXELS:
                continue
            texts.append(image_text(image))
        except Exception as error:  # pypdf and Pillow fail in many ways on odd image encodings
            log.debug("OCR: passed over an image (%s: %s)", type(error).__name__, error)
    return "\n\n".join(text for text in texts if text)


def image_text(image: Any) -> str:
    """The lines OCR reads in a Pillow image, paragraphs separated by a blank line."""
    result, _ = _engine()(image.convert("RGB"))
    lines: list[str] = []
    previous_bottom: float | None = None
    for box, text, score in result or []:
        if float(score) < MIN_SCORE or not str(text).strip():
            continue
        top, bottom = _vertical_extent(box)
        if previous_bottom is not None and top - previous_bottom > bottom - top:
            lines.append("")
        lines.append(str(text).strip())
        previous_bottom = bottom
    return "\n".join(lines)


def describe_pages(pages: Sequence[int]) -> str:
    """'page 3', 'pages 1-3, 7': page numbers for a message."""
    runs: list[list[int]] = []
    for number in sorted(pages):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    shown = ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)
    return f"page{'s' if len(pages) > 1 else ''} {shown}"


def _vertical_extent(box: Sequence[Sequence[float]]) -> tuple[float, float]:
    heights = [float(point[1]) for point in box]
    return min(heights), max(heights)


@functools.cache
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()
