"""End-to-end tests: the real bundled models (the language model, greedy; the embedder), the
command line in subprocesses. Every test here is marked `e2e`; `make test-fast` leaves them out."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
