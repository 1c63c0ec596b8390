"""The CLI: exit codes, messages and JSON shapes, run in-process with typer's runner."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli.app import app
from tests.unit.test_ingest_discovery import long_path


@pytest.fixture
def run(tmp_path: Path, model_cache: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    environment = {
        "ASSISTANT_HOME": str(tmp_path / "home"),
        "ASSISTANT_CACHE_DIR": str(model_cache),  # export the embedder once per session
        "COLUMNS": "200",
    }

    def invoke(*arguments: str, input: str | None = None, **variables: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(arguments), input=input, env=environment | variables)

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
    found = json.loads(result.output)
    assert found["query"] == "what does the cache store" and found["scope"] is None
    hits = found["passages"]
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
    from assistant.llm import native

    result = run("info", "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.output)
    shown = details["attention_kernel"]
    if native.compiler() is None:
        assert shown == "unavailable: no C compiler found (cc, gcc, clang or $CC)"
    else:
        assert shown in ("available", "unavailable: this CPU lacks AVX512-BF16")
    assert details["cpu"] and details["engine"]
    # Not measured yet, or measured by an earlier test sharing the models folder.
    measured = details.get("torch_prompt_products", "")
    assert details.get("torch_kernels", "").startswith("measured at the first question") or (
        measured.startswith(("int8", "int4", "float32")) and "measured" in measured
    )


def test_info_names_a_missing_compiler(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CC", raising=False)
    result = run("info")
    assert result.exit_code == 0, result.output
    assert "unavailable: no C compiler found" in result.output


def test_ingest_names_the_pdf_pages_that_need_ocr(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the OCR extra (as here, even where it is installed): a scanned PDF is skipped
    and a scanned page named, both with what they need (read by OCR: test_ingest_ocr.py)."""
    from tests.unit.test_ingest_ocr import mixed_pdf, scanned_pdf

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    folder = tmp_path / "scans"
    folder.mkdir()
    data, page = mixed_pdf()
    (folder / "mixed.pdf").write_bytes(data)
    (folder / "scan.pdf").write_bytes(scanned_pdf())
    needs = "(OCR is not installed: pip install 'assistant[ocr]')"
    result = run("ingest", str(folder), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["added"] == 1 and summary["skipped"] == 1
    assert summary["files"]["skipped"] == [
        {"path": str(folder / "scan.pdf"), "reason": f"scanned PDF: no text layer {needs}"}
    ]
    assert summary["files"]["notes"] == [
        {"path": str(folder / "mixed.pdf"), "note": f"page {page} not read: no text layer {needs}"}
    ]
    shown = run("ingest", str(folder), ASSISTANT_HOME=str(tmp_path / "other"))
    assert shown.exit_code == 0, shown.output
    assert f"mixed.pdf: page {page} not read: no text layer {needs}" in shown.stdout
    assert f"scanned PDF: no text layer {needs}: " in shown.stdout


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


def _ingest_json(run, *paths: Path) -> dict:  # type: ignore[no-untyped-def,type-arg]
    result = run("ingest", *(str(path) for path in paths), "--json")
    assert result.exit_code == 0, result.output
    summary: dict = json.loads(result.output)  # type: ignore[type-arg]
    return summary


def test_ingest_never_leaves_the_folder_given(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tmp_path = tmp_path.resolve()
    (tmp_path / "secret.md").write_text("# Secret\n\nOutside the notes.\n")
    notes = tmp_path / "notes"
    (notes / "archive" / "2024").mkdir(parents=True)
    (notes / "a.md").write_text("# A\n\nInside the notes.\n")
    (notes / "archive" / "2024" / "plan.md").write_text("# Plan\n\nThe plan for 2024.\n")
    (notes / "up").symlink_to("..", target_is_directory=True)  # would reach secret.md
    (notes / "latest").symlink_to("archive/2024", target_is_directory=True)

    summary = _ingest_json(run, notes)

    assert sorted(summary["files"]["added"]) == [
        str(notes / "a.md"),
        str(notes / "archive" / "2024" / "plan.md"),  # once, though reachable twice
    ]
    assert summary["files"]["skipped"] == [
        {
            "path": str(notes / "up"),
            "reason": f"symbolic link out of the folders given (to {tmp_path})",
        }
    ]
    sources = [row["source"] for row in json.loads(run("docs", "--json").output)]
    assert all(source.startswith(str(notes) + "/") for source in sources) and len(sources) == 2


def test_ingest_walks_two_thousand_nested_folders(run, nested_folders) -> None:  # type: ignore[no-untyped-def]
    top, bottom = nested_folders
    summary = _ingest_json(run, top)
    assert sorted(summary["files"]["added"]) == sorted(
        [str(top / "top.md"), str(bottom / "bottom.md")]
    )
    assert summary["skipped"] == 0


def test_ingest_names_what_it_cannot_list_or_read(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tmp_path = tmp_path.resolve()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nReadable.\n")
    os.mkfifo(docs / "pipe.md")
    long_path(docs, length=4_200)  # a folder no one can list: its path is over the limit

    summary = _ingest_json(run, docs)

    assert summary["added"] == 1
    reasons = {Path(item["path"]).name[:8]: item["reason"] for item in summary["files"]["skipped"]}
    assert reasons["pipe.md"] == "not a regular file (named pipe)"
    assert reasons["nnnnnnnn"] == "cannot list this folder (File name too long)"


def test_a_named_pipe_given_is_skipped_without_waiting_for_a_writer(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.txt"
    os.mkfifo(pipe)
    environment = {**os.environ, "ASSISTANT_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "ingest", str(pipe)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,  # reading the pipe would wait for ever
    )
    assert result.returncode == 0, result.stderr
    assert "added 0" in result.stdout and "skipped 1" in result.stdout
    assert "not a regular file (named pipe)" in result.stdout


def test_a_linked_file_is_one_document_and_one_search_hit(run, docs: Path) -> None:  # type: ignore[no-untyped-def]
    docs = docs.resolve()
    (docs / "alias.md").symlink_to("cache.md")
    summary = _ingest_json(run, docs)
    assert summary["files"]["added"] == [str(docs / "cache.md")]
    assert {"path": str(docs / "alias.md"), "reason": f"same file as {docs / 'cache.md'}"} in (
        summary["files"]["skipped"]
    )
    hits = json.loads(run("search", "what does the cache store", "--json").output)["passages"]
    assert [hit["source"] for hit in hits] == [str(docs / "cache.md")]


def test_messages_stay_on_one_line_when_not_a_terminal(tmp_path: Path) -> None:
    """A log or a pipe wants one line per message, however narrow the (absent) terminal."""
    runner = CliRunner()
    environment = {"ASSISTANT_HOME": str(tmp_path / "home"), "COLUMNS": "40"}
    missing = tmp_path / ("a-folder-with-a-rather-long-name-" * 3)
    result = runner.invoke(app, ["ingest", str(missing)], env=environment)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: no such file or folder: {missing}"

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.bin").write_bytes(b"\x00\x01")  # skipped: nothing to embed, no model loaded
    result = runner.invoke(app, ["ingest", str(folder)], env=environment)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("added 0 ")
    assert result.stdout.splitlines()[0].endswith(" s)")


def test_version(run) -> None:  # type: ignore[no-untyped-def]
    from importlib.metadata import version

    result = run("--version")
    assert result.exit_code == 0
    assert result.output == f"assistant {version('assistant')}\n"


def test_shell_completion_is_offered(run) -> None:  # type: ignore[no-untyped-def]
    result = run("--help")
    assert result.exit_code == 0
    assert "--install-completion" in result.output and "--show-completion" in result.output


def test_ask_reads_the_question_from_stdin(run) -> None:  # type: ignore[no-untyped-def]
    for arguments in ((), ("-",)):
        result = run("ask", *arguments, input="  \n\n")
        assert result.exit_code == 1
        assert result.stderr == "error: the question is empty\n"
        # A question on stdin gets past the check, to the (empty) home: no model is loaded.
        result = run("ask", *arguments, "--no-stream", input="What does the KV cache store?\n")
        assert result.exit_code == 1 and "Nothing is ingested" in result.stderr
        assert "question is empty" not in result.output


def test_errors_under_json_are_json(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("ingest", str(tmp_path / "missing"), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "error": f"no such file or folder: {tmp_path / 'missing'}",
        "kind": "input_error",
    }
    assert result.stderr == ""

    result = run("ask", "--json", input="")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"error": "the question is empty", "kind": "input_error"}

    for command in (("ask", "What does the KV cache store?"), ("search", "cache")):
        result = run(*command, "--json")
        assert result.exit_code == 1
        error = json.loads(result.stdout)
        assert error["kind"] == "input_error" and "nothing is ingested" in error["error"]

    result = run("sessions", "--delete", "nope", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"].startswith("no session called 'nope'")

    result = run("ingest", str(tmp_path / "missing"))  # without --json: the red line
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: no such file or folder")


@pytest.mark.parametrize("command", ["ask", "chat"])
def test_generation_flags_are_checked_before_any_model_loads(run, command: str) -> None:  # type: ignore[no-untyped-def]
    question = ["What?"] if command == "ask" else []
    result = run(command, "--help")
    assert result.exit_code == 0
    for flag in ("--temperature", "--max-tokens", "--no-stream"):
        assert flag in result.output
    result = run(command, *question, "--temperature", "-0.5")
    assert result.exit_code == 2 and "Invalid value for '--temperature'" in result.output
    result = run(command, *question, "--max-tokens", "0")
    assert result.exit_code == 2 and "Invalid value for '--max-tokens'" in result.output


def _record_a_session(home: Path, docs: Path) -> None:
    """Two turns in session `work` (one cited, one stopped), then a /reset and an abstention."""
    from assistant.chat.sessions import Sessions
    from assistant.config import Config
    from assistant.index.home import Home

    assistant_home = Home(Config.load(environ={}, home=home))
    sessions = Sessions(assistant_home.store)
    session = sessions.open("work")
    citation = {
        "n": 1,
        "source": str(docs / "cache.md"),
        "start_line": 3,
        "end_line": 4,
        "page": None,
        "heading": "Cache",
        "text": "The KV cache stores keys and values.",
        "score": 0.5,
    }
    sessions.record(
        session, "What does the cache store?", "Keys and values. [1]", citations=[citation]
    )
    sessions.record(session, "How big is it?", "", interrupted=True)
    sessions.reset(session)
    sessions.record(session, "Who wrote Frankenstein?", "I couldn't find this.", abstained=True)
    assistant_home.close()


def test_sessions_list_export_and_delete(run, tmp_path: Path, docs: Path) -> None:  # type: ignore[no-untyped-def]
    _record_a_session(tmp_path / "home", docs)

    listed = run("sessions", "--json")
    assert listed.exit_code == 0
    assert [(s["name"], s["turns"]) for s in json.loads(listed.stdout)] == [("work", 3)]

    markdown = run("sessions", "export", "work", "--format", "md")
    assert markdown.exit_code == 0, markdown.output
    text = markdown.stdout
    assert text.startswith("# Chat session: work\n")
    assert "## 1. What does the cache store?" in text and "Keys and values. [1]" in text
    assert f"- [1] `{docs / 'cache.md'}:3-4`, Cache" in text
    assert "## 2. How big is it?" in text and "stopped before the answer" in text
    assert text.index("A new conversation starts here") < text.index("## 3. Who wrote")
    assert "\x1b[" not in text

    exported = run("sessions", "export", "work", "--format", "json")
    assert exported.exit_code == 0
    turns = json.loads(exported.stdout)["turns"]
    assert [turn["question"] for turn in turns] == [
        "What does the cache store?",
        "How big is it?",
        "Who wrote Frankenstein?",
    ]
    assert turns[0]["citations"][0]["heading"] == "Cache" and turns[1]["interrupted"]
    assert turns[2]["abstained"] and turns[2]["conversation"] == 2

    target = tmp_path / "work.md"
    written = run("sessions", "export", "work", "--output", str(target))
    assert written.exit_code == 0 and written.stdout == ""
    assert target.read_text() == text and "wrote 3 turn(s)" in written.stderr

    missing = run("sessions", "export", "nope")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: no session called 'nope'")
    wrong = run("sessions", "export", "work", "--format", "pdf")
    assert wrong.exit_code == 1 and "md or json" in wrong.stderr
    unwritable = run("sessions", "export", "work", "-o", str(tmp_path / "no" / "such.md"))
    assert unwritable.exit_code == 1 and "cannot write" in unwritable.stderr

    deleted = run("sessions", "--delete", "work")
    assert deleted.exit_code == 0 and "deleted session work" in deleted.stdout
    assert "No sessions yet" in run("sessions").stdout


def test_no_escape_codes_with_no_color_or_into_a_pipe(run) -> None:  # type: ignore[no-untyped-def]
    # FORCE_COLOR makes rich treat the runner's output as a terminal: styled, as a user sees it.
    assert "\x1b[" in run("sessions", FORCE_COLOR="1").stdout
    assert "\x1b[" not in run("sessions", FORCE_COLOR="1", NO_COLOR="1").stdout
    assert "\x1b[" not in run("sessions").stdout  # not a terminal
    result = run("ingest", "/nonexistent/folder", FORCE_COLOR="1", NO_COLOR="1")
    assert result.exit_code == 1 and result.stderr.startswith("error: no such file")


def test_an_answer_the_model_server_broke_off_is_marked_everywhere(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`ask` (its note and `--json`) and `chat` (its session) over a stream cut halfway, from a
    real loopback server (`tests/fake_openai_server.py`)."""
    from tests.fake_openai_server import Script, fake_server

    folder = tmp_path / "kv"
    folder.mkdir()
    (folder / "kv-cache.md").write_text(
        "# The KV cache\n\nThe KV cache stores the keys and values of all previous tokens, for "
        "every layer.\nIt trades memory for compute.\n"
    )
    assert run("ingest", str(folder)).exit_code == 0
    question = "What does the KV cache store?"
    pieces = ("The KV cache stores the keys and values", " of all previous tokens.", " It")
    with fake_server(Script(pieces=pieces, mode="cut", cut_after=2)) as (url, _):
        remote = {"ASSISTANT_MODEL": "openai:fake", "ASSISTANT_OPENAI_BASE_URL": url}
        asked = run("ask", question, "--json", **remote)
        shown = run("ask", question, **remote)
        chatted = run("chat", "--session", "cut", input=question + "\n", **remote)
    assert asked.exit_code == 0, asked.output
    data = json.loads(asked.stdout)
    assert data["incomplete"] is True and data["interruption"].startswith("the stream broke off")
    assert not data["abstained"] and data["timings"]["incomplete"] == 1.0
    note = (
        f"the model server broke off the answer: {data['interruption']}; what arrived was checked"
    )
    assert shown.exit_code == 0 and note in shown.stdout
    assert chatted.exit_code == 0 and note in chatted.stdout
    exported = run("sessions", "export", "cut", "--format", "md").stdout
    assert exported.index("keys and values") < exported.index("stopped before the answer")


def test_info_on_a_remote_model_shows_no_torch_kernels(run) -> None:  # type: ignore[no-untyped-def]
    model = ("--model", "openai:llama3")
    details = json.loads(run("info", *model, "--json").stdout)
    assert details["engine"].startswith("openai (an OpenAI-compatible server at http")
    assert details["language_model"] == "openai:llama3"
    assert not {"device", "attention_kernel", "torch_kernels"} & set(details)
    shown = run("info", *model)
    assert shown.exit_code == 0 and "openai" in shown.stdout and "torch_" not in shown.stdout
    assert "openai:NAME" in run("ask", "--help").output


@pytest.fixture
def scoped_docs(tmp_path: Path) -> Path:
    """Four files about the KV cache under main/ and two about bread under side/."""
    folder = tmp_path / "scoped"
    (folder / "main").mkdir(parents=True)
    (folder / "side").mkdir()
    for number in range(4):
        (folder / "main" / f"cache-{number}.md").write_text(
            f"# Cache {number}\n\nThe KV cache stores the keys and values of past tokens.\n"
        )
    for grain in ("rye", "spelt"):
        (folder / "side" / f"{grain}.md").write_text(
            f"# {grain.title()}\n\nSourdough {grain} bread needs flour, water and salt.\n"
        )
    return folder


def test_search_and_ask_take_a_scope(run, scoped_docs: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.fake_openai_server import Script, fake_server

    assert run("ingest", str(scoped_docs)).exit_code == 0
    side = scoped_docs / "side"
    result = run("search", "what does the KV cache store", "--in", str(side), "-k", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"in: {side}\n")
    assert (
        "rye.md" in result.stdout and "spelt.md" in result.stdout and "cache-" not in result.stdout
    )
    result = run("search", "cache", "--json", "--in", str(side / "rye.md"), "--in", str(side))
    found = json.loads(result.stdout)
    assert found["scope"] == [str(side / "rye.md"), str(side)]
    assert {Path(hit["source"]).name for hit in found["passages"]} == {"rye.md", "spelt.md"}

    # Nothing under the path: one error naming it, before any model loads (none would answer).
    nowhere = scoped_docs / "Side"
    for command in (("search", "cache"), ("ask", "What?", "--model", "openai:fake"), ("chat",)):
        result = run(*command, "--in", str(nowhere), ASSISTANT_OPENAI_BASE_URL="http://127.0.0.1:9")
        assert result.exit_code == 1, result.output
        assert (
            result.stderr
            == f"error: nothing ingested under {nowhere}; see `assistant docs` for what is\n"
        )

    with fake_server(Script(pieces=("Sourdough bread needs flour, water and salt.",))) as (
        url,
        recorded,
    ):
        arguments = ("--in", str(side), "--model", "openai:fake")
        result = run(
            "ask",
            "What does the KV cache store?",
            *arguments,
            "--json",
            ASSISTANT_OPENAI_BASE_URL=url,
        )
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)
        assert answer["scope"] == [str(side)]
        assert {Path(hit["source"]).parent for hit in answer["retrieved"]} == {side}
        result = run(
            "ask",
            "What does sourdough need?",
            *arguments,
            "--no-stream",
            ASSISTANT_OPENAI_BASE_URL=url,
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"in: {side}\n")
        unscoped = run(
            "ask",
            "What does sourdough need?",
            "--model",
            "openai:fake",
            "--json",
            ASSISTANT_OPENAI_BASE_URL=url,
        )
        assert json.loads(unscoped.stdout)["scope"] == []
    prompts = [json.dumps(body["messages"]) for _, body in recorded.chat_requests()]
    assert prompts and "Sourdough rye bread" in prompts[0] and "KV cache stores" not in prompts[0]


def test_chat_in_sets_and_clears_the_scope(run, scoped_docs: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.fake_openai_server import Script, fake_server

    assert run("ingest", str(scoped_docs)).exit_code == 0
    side, main = scoped_docs / "side", scoped_docs / "main"
    lines = [
        "What does sourdough bread need?",  # scoped by --in to side/
        f"/in {main}/cache-1.md '{main}/cache-2.md'",
        "What does the KV cache store?",
        f"/in {scoped_docs}/nowhere",  # refused: the scope stays as it was
        "What does the KV cache store of past tokens?",
        "/in",
        "What does sourdough rye bread need?",
    ]
    with fake_server(Script(pieces=("It stores keys and values.",))) as (url, recorded):
        result = run(
            "chat",
            "--in",
            str(side),
            "--model",
            "openai:fake",
            input="\n".join(lines) + "\n",
            ASSISTANT_OPENAI_BASE_URL=url,
        )
    assert result.exit_code == 0, result.output
    output = result.stdout
    assert f"Searching only in: {main}/cache-1.md, {main}/cache-2.md" in output
    assert f"nothing ingested under {scoped_docs}/nowhere" in output
    assert "Searching all your documents." in output
    headers = [line for line in output.splitlines() if line.startswith("in: ")]
    assert headers == [
        f"in: {side}",
        f"in: {main}/cache-1.md, {main}/cache-2.md",
        f"in: {main}/cache-1.md, {main}/cache-2.md",
    ]
    # The files of the passages each question was given: the last one's from anywhere.
    given = [
        set(re.findall(r"/scoped/(\w+/[\w-]+\.md)", json.dumps(body["messages"])))
        for _, body in recorded.chat_requests()
    ]
    assert len(given) == 4
    assert given[0] == {"side/rye.md", "side/spelt.md"}
    assert given[1] == given[2] == {"main/cache-1.md", "main/cache-2.md"}
    assert "side/rye.md" in given[3] and len(given[3]) > 2


def test_a_resumed_chat_session_searches_where_it_left_off(  # type: ignore[no-untyped-def]
    run, scoped_docs: Path, model_cache: Path
) -> None:
    from tests.fake_openai_server import Script, fake_server

    assert run("ingest", str(scoped_docs)).exit_code == 0
    side, main = scoped_docs / "side", scoped_docs / "main"
    question = "What does the KV cache store?\n"
    with fake_server(Script(pieces=("It stores keys and values.",))) as (url, _):

        def chat(*arguments: str, input: str = question):  # type: ignore[no-untyped-def]
            result = run(
                "chat", "--model", "openai:fake", *arguments, input=input,
                ASSISTANT_OPENAI_BASE_URL=url,
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            return result

        def headers(result) -> list[str]:  # type: ignore[no-untyped-def]
            return [line for line in result.stdout.splitlines() if line.startswith("in: ")]

        assert headers(chat("--session", "work", input=f"/in {side}\n" + question)) == [
            f"in: {side}"
        ]
        assert headers(chat("--session", "work")) == [f"in: {side}"]  # kept by the session
        assert headers(chat("--session", "other")) == []  # another session: everywhere
        assert headers(chat("--session", "work", "--in", str(main))) == [f"in: {main}"]
        assert headers(chat("--session", "work")) == [f"in: {main}"]  # --in replaced it
        assert headers(chat("--session", "work", input="/in\n" + question)) == []
        assert headers(chat("--session", "work")) == []  # cleared for good

        chat("--session", "work", input=f"/in {side}\n")
        assert run("forget", str(side)).exit_code == 0
        forgotten = chat("--session", "work")
        assert headers(forgotten) == []
        assert f"This session's scope: nothing ingested under {side}" in forgotten.stderr

        # In a terminal, the greeting of a resumed session says where it searches.
        chat("--session", "work", input=f"/in {main}\n")
        pexpect = pytest.importorskip("pexpect")
        environment = {
            **os.environ,
            "ASSISTANT_HOME": str(scoped_docs.parent / "home"),
            "ASSISTANT_CACHE_DIR": str(model_cache),
            "ASSISTANT_OPENAI_BASE_URL": url,
        }
        child = pexpect.spawn(
            sys.executable,
            ["-m", "assistant", "chat", "--session", "work", "--model", "openai:fake"],
            env=environment,
            cwd=str(scoped_docs.parent),
            timeout=120,
            encoding="utf-8",
            dimensions=(50, 200),
        )
        child.expect(r"Searching only in: scoped/main \(/in alone: all\)")
        child.expect("you›")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
