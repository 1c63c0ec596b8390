from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import pytest

import assistant.ingest.pipeline as ingest_module
from assistant.errors import BusyError, InputError
from assistant.index.home import Home
from assistant.index.store import DocumentRow
from assistant.index.vectors import VectorIndex
from assistant.ingest.discovery import discover
from assistant.ingest.pipeline import IngestProgress, IngestSummary, ingest
from assistant.ingest.planning import Change, Skip, Unchanged, plan_file, plan_removals
from tests.conftest import REPOSITORY


def _run(home: Home, *paths: Path) -> IngestSummary:
    summary = list(ingest(home, list(paths)))[-1]
    assert isinstance(summary, IngestSummary)
    return summary


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text(
        "# Alpha\n\nAlpha particles are helium nuclei.\n\n## More\n\nThey are heavy.\n"
    )
    (docs / "sub" / "b.txt").write_text("Beta decay emits an electron.\n")
    (docs / "picture.png").write_bytes(b"\x89PNG\r\n")
    (docs / ".secret.md").write_text("# hidden\n")
    (docs / "binary.txt").write_bytes(b"abc\x00def")
    (docs / "garbled.txt").write_bytes(b"x\n" + bytes(range(0x80, 0x100)) + bytes(range(1, 9)) * 20)
    (docs / "empty.md").write_text("")
    return docs


def test_first_ingest_reports_every_file(any_home: Home, folder: Path) -> None:
    home = any_home
    summary = _run(home, folder)
    assert sorted(Path(p).name for p in summary.added) == ["a.md", "b.txt"]
    reasons = {Path(s.path).name: s.reason for s in summary.skipped}
    assert reasons["picture.png"] == "unsupported type (.png)"
    assert reasons[".secret.md"] == "hidden file"
    assert reasons["binary.txt"].startswith("binary file")
    assert "UTF-8" in reasons["garbled.txt"]
    assert reasons["empty.md"].startswith("empty")
    assert summary.chunks_added == home.store.counts()["chunks"] == len(home.index)
    rows = home.store.documents()
    assert {row.title for row in rows} == {"Alpha", "b"}
    json.dumps(summary.as_dict())  # serializable


def test_reingest_unchanged_does_no_work_and_changes_are_applied(
    any_home: Home, folder: Path
) -> None:
    home = any_home
    _run(home, folder)
    old_ids = set(home.index.ids().tolist())
    again = _run(home, folder)
    assert (len(again.added), len(again.updated), len(again.unchanged)) == (0, 0, 2)
    assert again.chunks_added == 0

    (folder / "a.md").write_text("# Alpha\n\nAlpha particles are two protons and two neutrons.\n")
    (folder / "sub" / "b.txt").unlink()
    changed = _run(home, folder)
    assert [Path(p).name for p in changed.updated] == ["a.md"]
    assert [Path(p).name for p in changed.removed] == ["b.txt"]
    ids = set(home.index.ids().tolist())
    assert ids == set(home.store.chunk_ids().tolist())
    assert not ids & old_ids  # old vectors of the changed and removed files are gone


def test_touched_but_identical_file_is_unchanged(any_home: Home, folder: Path) -> None:
    home = any_home
    _run(home, folder)
    os.utime(folder / "a.md", (1, 1))
    summary = _run(home, folder)
    assert len(summary.unchanged) == 2 and summary.chunks_added == 0


def test_jsonl_corpus_reembeds_only_changed_rows(any_home: Home, tmp_path: Path) -> None:
    home = any_home
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": str(i), "title": f"T{i}", "text": f"Document number {i} about topic {i}."}
        for i in range(3)
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    first = _run(home, corpus)
    assert first.chunks_added == 3
    rows[1]["text"] = "A rewritten second document."
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    second = _run(home, corpus)
    assert second.chunks_added == 1 and second.chunks_removed == 1
    assert len(home.store.documents()) == 3


def test_missing_path_is_an_input_error(home: Home, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        list(ingest(home, [tmp_path / "nope"]))


def test_symlink_loop_is_reported_not_followed_forever(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\ntext\n")
    (docs / "loop").symlink_to(docs, target_is_directory=True)
    files, _, skipped = discover([docs])
    assert [f.name for f in files] == ["a.md"]
    assert any(s.reason == "symbolic link loop" for s in skipped)


def test_documents_under_a_folder_that_cannot_be_listed_are_kept(home: Home, folder: Path) -> None:
    _run(home, folder)
    (folder / "sub").chmod(0)
    try:
        if os.access(folder / "sub", os.R_OK):
            pytest.skip("permission bits do not stop this user (root)")
        summary = _run(home, folder)
    finally:
        (folder / "sub").chmod(0o755)
    assert summary.removed == []  # not "gone": we could not look
    assert {s.reason for s in summary.skipped} >= {"cannot list this folder (Permission denied)"}
    assert str(folder / "sub" / "b.txt") in {row.path for row in home.store.documents()}


def test_a_crash_before_the_index_save_is_repaired_on_open(home: Home, folder: Path) -> None:
    _run(home, folder)
    stored = set(home.store.chunk_ids().tolist())
    home.config.index_path.unlink()  # as if killed after the database commit
    reopened = VectorIndex.open(home.config.index_path, home.dimension, home.store)
    assert set(reopened.ids().tolist()) == stored


def test_one_writer_at_a_time(home: Home) -> None:
    with home.writing():
        other = Home(home.config)
        with pytest.raises(BusyError), other.writing():
            pass


def test_big_corpus_is_committed_in_groups_and_resumes(
    any_home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = any_home
    monkeypatch.setattr(ingest_module, "FLUSH_CHUNKS", 2)
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": str(i), "title": "", "text": f"Row {i} talks about item {i}."} for i in range(5)
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    events = ingest(home, [corpus])
    progress = [e for e in events if not isinstance(e, IngestSummary)]
    assert len(home.store.documents()) == 5
    assert sum(1 for e in progress if e.path == str(corpus)) >= 3  # several group commits

    rows.reverse()  # same rows, different bytes: nothing to embed
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    summary = _run(home, corpus)
    assert summary.chunks_added == 0 and len(home.store.documents()) == 5
    assert len(_run(home, corpus).unchanged) == 1


def test_a_file_interrupted_between_its_parts_is_finished_by_the_next_run(
    any_home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = any_home
    monkeypatch.setattr(ingest_module, "FIRST_SLICE_CHUNKS", 1)
    monkeypatch.setattr(ingest_module, "COMMIT_SECONDS", 1e-9)  # one document per commit
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"_id": str(i), "title": "", "text": f"Row {i} is about item {i}."} for i in range(5)]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    events = ingest(home, [corpus])
    for event in events:
        if isinstance(event, IngestProgress) and event.chunks_done:
            break  # as if killed after the first commit: nothing more runs
    events.close()
    committed = home.store.documents()
    assert 0 < len(committed) < 5
    assert {row.file_hash for row in committed} == {""}  # marked unfinished

    resumed = Home(home.config, home.embedder)  # a new process: the index is reconciled on open
    summary = _run(resumed, corpus)
    assert summary.chunks_added == 5 - len(committed)  # only what was not stored yet
    assert len(resumed.store.documents()) == 5
    assert set(resumed.index.ids().tolist()) == set(resumed.store.chunk_ids().tolist())
    assert len(_run(resumed, corpus).unchanged) == 1
    resumed.close()


# --- the decision step: what each file is, decided without writing anything ------------------

LIMIT = 1_000_000


def _stored(plan: Change) -> list[DocumentRow]:
    """The rows an ingest applying `plan` leaves in the store."""
    return [
        DocumentRow(
            id=number,
            key=document.key,
            path=plan.path,
            format=document.format,
            title=document.title,
            content_hash=document.content_hash or plan.file_hash,
            file_hash=plan.file_hash,
            size=plan.size,
            mtime=plan.mtime,
            chunk_count=1,
            ingested_at=0.0,
        )
        for number, document in enumerate(plan.documents, start=1)
    ]


def _first(path: Path) -> list[DocumentRow]:
    plan = plan_file(path, [], LIMIT)
    assert isinstance(plan, Change)
    return _stored(plan)


def _jsonl(path: Path, texts: list[str]) -> None:
    lines = [json.dumps({"_id": str(n), "title": "", "text": t}) for n, t in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n")


def test_a_new_file_is_a_change_with_all_its_documents(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nSome text.\n")
    plan = plan_file(note, [], LIMIT)
    assert isinstance(plan, Change) and plan.is_new
    assert [d.key for d in plan.documents] == list(plan.keys) == [str(note)]
    assert (plan.size, plan.mtime) == (note.stat().st_size, note.stat().st_mtime)


def test_the_same_stat_is_unchanged_without_reading_the_file(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nSome text.\n")
    stored = _first(note)
    status = note.stat()
    note.write_text("# Note\n\nSome TEXT.\n")  # same size, and the same mtime put back:
    os.utime(note, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert plan_file(note, stored, LIMIT) == Unchanged(str(note))  # the bytes were not read


def test_a_touched_file_with_the_same_bytes_is_unchanged_with_its_new_stat(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nSome text.\n")
    stored = _first(note)
    os.utime(note, (1, 1))
    assert plan_file(note, stored, LIMIT) == Unchanged(str(note), touch=(note.stat().st_size, 1.0))


def test_a_changed_file_is_a_change_of_an_old_file(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nSome text.\n")
    stored = _first(note)
    note.write_text("# Note\n\nOther text, longer.\n")
    plan = plan_file(note, stored, LIMIT)
    assert isinstance(plan, Change) and not plan.is_new
    assert "Other text" in plan.documents[0].text


def test_a_corpus_reembeds_only_its_changed_rows_and_a_dropped_row_embeds_nothing(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    _jsonl(corpus, ["first row", "second row", "third row"])
    stored = _first(corpus)
    _jsonl(corpus, ["first row", "second row, rewritten", "third row"])
    plan = plan_file(corpus, stored, LIMIT)
    assert isinstance(plan, Change)
    assert [d.key for d in plan.documents] == [f"{corpus}#1"]
    assert plan.keys == (f"{corpus}#0", f"{corpus}#1", f"{corpus}#2")

    _jsonl(corpus, ["first row", "second row"])  # a row gone, the others as they were
    plan = plan_file(corpus, stored, LIMIT)
    assert isinstance(plan, Change) and plan.documents == ()
    assert plan.keys == (f"{corpus}#0", f"{corpus}#1")


def test_skips_say_why_and_only_an_unreadable_ingested_file_is_forgotten(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Readable text.\n")
    stored = _first(note)
    note.write_bytes(b"abc\x00def")
    plan = plan_file(note, stored, LIMIT)
    assert isinstance(plan, Skip) and plan.reason.startswith("binary file") and plan.forget_stored
    assert plan_file(note, [], LIMIT) == Skip(str(note), plan.reason, forget_stored=False)

    note.write_text("Readable text again, and longer than ten bytes.\n")
    assert plan_file(note, stored, 10) == Skip(str(note), "larger than 0 MB")  # kept, not forgotten
    note.unlink()
    assert plan_file(note, stored, LIMIT) == Skip(
        str(note), "cannot read (No such file or directory)"
    )
    folder = tmp_path / "now-a-folder"
    folder.mkdir()
    assert plan_file(folder, [], LIMIT) == Skip(
        str(folder), "cannot read (no longer a regular file)"
    )


def test_deciding_writes_nothing(home: Home, folder: Path) -> None:
    _run(home, folder)
    (folder / "a.md").write_text("# Alpha\n\nRewritten.\n")
    before = (home.store.documents(), home.store.chunk_ids().tolist())
    for path in discover([folder])[0]:
        plan_file(path, home.store.documents(str(path)), LIMIT)
    assert (home.store.documents(), home.store.chunk_ids().tolist()) == before


def test_removals_are_the_stored_files_neither_ingested_nor_kept() -> None:
    under = [["/d/b.md", "/d/a.md", "/d/sub/c.md", "/d/locked/e.md"], ["/e/x.md"]]
    ingested = {"/d/a.md"}
    kept = {"/d/locked"}  # a folder that could not be listed
    assert plan_removals(under, ingested, kept) == ["/d/b.md", "/d/sub/c.md", "/e/x.md"]
    assert plan_removals([], ingested, kept) == []


def test_a_file_that_becomes_unreadable_leaves_store_and_index(
    any_home: Home, folder: Path
) -> None:
    home = any_home
    _run(home, folder)
    (folder / "a.md").write_bytes(b"# Alpha\x00 binary now")
    summary = _run(home, folder)
    assert [Path(p).name for p in summary.removed] == ["a.md"] and summary.chunks_removed > 0
    assert str(folder / "a.md") in {item.path for item in summary.skipped}
    assert str(folder / "a.md") not in {row.path for row in home.store.documents()}
    assert set(home.index.ids().tolist()) == set(home.store.chunk_ids().tolist())


def _load_script(name: str) -> ModuleType:
    path = REPOSITORY / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
