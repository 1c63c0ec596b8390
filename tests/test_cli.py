"""The CLI: exit codes, messages and JSON shapes, run in-process with typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    environment = {"ASSISTANT_HOME": str(tmp_path / "home"), "COLUMNS": "200"}

    def invoke(*arguments: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(arguments), env=environment)

    return invoke


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cache.md").write_text("# Cache\n\nThe KV cache stores keys and values.\n")
    (folder / "notes.bin").write_bytes(b"\x00\x01")
    return folder


def test_ingest_search_docs_forget_info(run, docs: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("ingest", str(docs), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["added"] == 1 and summary["skipped"] == 1
    assert summary["files"]["skipped"][0]["reason"] == "unsupported type (.bin)"

    result = run("search", "what does the cache store", "--json", "-k", "1")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert set(hits[0]) == {
        "rank",
        "score",
        "source",
        "start_line",
        "end_line",
        "page",
        "heading",
        "text",
        "chunk_id",
    }
    assert hits[0]["source"].endswith("cache.md") and hits[0]["start_line"] == 3

    result = run("docs", "--json")
    assert [d["title"] for d in json.loads(result.output)] == ["Cache"]

    result = run("info", "--json")
    assert json.loads(result.output)["chunks"] == 1

    result = run("forget", str(docs / "cache.md"))
    assert result.exit_code == 0 and "forgot 1 file" in result.output
    assert json.loads(run("info", "--json").output)["chunks"] == 0


def test_info_says_what_attends_over_the_prompt(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from assistant import native

    result = run("info", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["prompt_attention"]
    if native.compiler() is None:
        assert shown == "torch: no C compiler found (cc, gcc, clang or $CC)"
    else:
        assert shown in ("C kernel", "torch: this CPU lacks AVX512-BF16")


def test_info_names_a_missing_compiler(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CC", raising=False)
    result = run("info")
    assert result.exit_code == 0, result.output
    assert "torch: no C compiler found" in result.output


def test_human_ingest_output_names_skipped_files(run, docs: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("ingest", str(docs))
    assert result.exit_code == 0
    assert "added 1" in result.output and "notes.bin" in result.output


def test_errors_are_one_line_and_non_zero(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("ingest", str(tmp_path / "missing"))
    assert result.exit_code == 1
    assert "error: no such file or folder" in result.output
    assert "Traceback" not in result.output

    result = run("search", "anything")
    assert result.exit_code == 1 and "assistant ingest" in result.output

    result = run("forget", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "nothing ingested" in result.output


def test_corrupt_index_points_to_reindex(run, docs: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("ingest", str(docs)).exit_code == 0
    (tmp_path / "home" / "index.faiss").write_bytes(b"garbage")
    result = run("search", "cache")
    assert result.exit_code == 1 and "assistant reindex" in result.output
    assert run("reindex").exit_code == 0
    assert run("search", "cache").exit_code == 0


def test_the_empty_home_hint_names_a_folder_that_exists_from_here(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not the repository: "corpora/sample" would not exist here
    result = run("ask", "What does the KV cache store?")
    assert result.exit_code == 1 and "Nothing is ingested" in result.output
    command = next(line for line in result.output.splitlines() if "assistant ingest" in line)
    folder = command.split("assistant ingest", 1)[1].strip()
    assert (tmp_path / folder).is_dir()
