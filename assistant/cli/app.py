"""The `assistant` command line: reads options, calls the library, draws with rich.

Every command is a thin layer over a library call. Errors the user can fix (`AssistantError`)
become one red line and exit code 1 (under `--json`, one JSON object on stdout); the traceback
shows only with `--debug`. When the output is not a terminal (a pipe, a log), lines are not
wrapped: one message stays one line, and it carries no escape codes; neither does anything with
NO_COLOR set.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from assistant.cli.render import display_path
from assistant.cli.render import location as passage_location
from assistant.config import Config
from assistant.errors import AssistantError, InputError
from assistant.index.home import Home
from assistant.ingest.pipeline import IngestProgress, IngestSummary, ingest

app = typer.Typer(
    help="A local, private assistant that answers from your documents and cites its sources.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for the user's shell
    pretty_exceptions_enable=False,
)


def _console(stderr: bool = False) -> Console:
    """A console as the environment asks now: no styles at all with NO_COLOR (rich alone would
    still write bold and dim), and none into a pipe (rich decides that)."""
    plain = os.environ.get("NO_COLOR", "") != ""
    return Console(stderr=stderr, highlight=False, color_system=None if plain else "auto")


console = _console()
errors = _console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", help="Folder holding all state (default: $ASSISTANT_HOME).", show_default=False
    ),
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

F = TypeVar("F", bound=Callable[..., Any])


def _quiet_libraries() -> None:
    """Model loading prints progress bars and warnings a user cannot act on; hide them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF de-quantization bar is plain tqdm
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def handle_errors(function: F) -> F:
    """Turn library errors into one clear line and a non-zero exit (traceback with --debug)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global console, errors
        debug = bool(kwargs.get("debug")) or os.environ.get("ASSISTANT_DEBUG", "") in ("1", "true")
        as_json = bool(kwargs.get("as_json"))  # the command's --json: errors are JSON too
        _quiet_libraries()
        # Built per call: tests swap the streams and the environment between commands.
        console, errors = _console(), _console(stderr=True)
        for stream in (console, errors):
            stream.soft_wrap = not stream.is_terminal
        try:
            return function(*args, **kwargs)
        except AssistantError as error:
            if debug:
                raise
            if as_json:
                print(json.dumps({"error": str(error), "kind": error_kind(error)}))
            else:
                errors.print(f"[bold red]error:[/] {escape(str(error))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            if debug:
                raise
            if as_json:
                print(json.dumps({"error": "interrupted", "kind": "interrupted"}))
            else:
                errors.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def error_kind(error: BaseException) -> str:
    """The `kind` of a JSON error: the exception's class in snake case (`input_error`)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def load_config(home: Path | None, **overrides: Any) -> Config:
    return Config.load(home=home, **overrides)


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("assistant")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        print(f"assistant {_package_version()}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    pass


# --- ingest ----------------------------------------------------------------------------------


@app.command("ingest")
@handle_errors
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Folders and files to ingest.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Read, chunk and index documents; re-running only processes what changed."""
    config = load_config(home, debug=debug)
    assistant_home = Home(config)
    with assistant_home.writing():
        summary: IngestSummary | None = None
        show_bar = not as_json and console.is_terminal
        progress = Progress(
            TextColumn("[bold]Ingesting[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            TextColumn("{task.fields[chunks]} chunks"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[current]}"),
            console=console,
            disable=not show_bar,
            transient=False,
        )
        with progress:
            task = progress.add_task("ingest", total=None, chunks=0, rate="", current="")
            started = None
            import time

            started = time.perf_counter()
            try:
                for event in ingest(assistant_home, paths):
                    if isinstance(event, IngestProgress):
                        elapsed = max(time.perf_counter() - started, 1e-6)
                        rate = f"{event.chunks_done / elapsed:.1f} chunks/s"
                        progress.update(
                            task,
                            total=event.files_total,
                            completed=event.files_done,
                            chunks=event.chunks_done,
                            rate=rate,
                            current=display_path(event.path)[-40:] if event.path else "",
                        )
                    else:
                        summary = event
                        progress.update(task, completed=progress.tasks[0].total, current="")
            finally:
                assistant_home.close()
    if summary is None:  # pragma: no cover - ingest always ends with a summary
        return
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2))
        return
    _print_ingest_summary(summary)


def _print_ingest_summary(summary: IngestSummary) -> None:
    console.print(
        f"[green]added {len(summary.added)}[/]  updated {len(summary.updated)}  "
        f"unchanged {len(summary.unchanged)}  removed {len(summary.removed)}  "
        f"[yellow]skipped {len(summary.skipped)}[/]   "
        f"({summary.chunks_added} chunks in {summary.seconds:.1f} s"
        + (f", {summary.chunks_per_second:.1f} chunks/s" if summary.chunks_added else "")
        + ")"
    )
    if summary.skipped:
        reasons = summary.skip_reasons()
        for reason, count in reasons.most_common():
            examples = [s.path for s in summary.skipped if s.reason == reason][:3]
            shown = ", ".join(display_path(p) for p in examples)
            more = f" and {count - len(examples)} more" if count > len(examples) else ""
            console.print(f"  [yellow]skipped[/] {count} × {escape(reason)}: {escape(shown)}{more}")
        console.print("  [dim](--json lists every skipped file)[/]")


# --- search ----------------------------------------------------------------------------------


TemperatureOption = Annotated[
    float | None,
    typer.Option("--temperature", min=0.0, help="0 is greedy (the default); above 0 samples."),
]
MaxTokensOption = Annotated[
    int | None, typer.Option("--max-tokens", min=1, help="Longest answer, in tokens.")
]
NoStreamOption = Annotated[
    bool,
    typer.Option("--no-stream", help="Print only the checked answer, not the model's live text."),
]


def _generation_config(
    home: Path | None, temperature: float | None, max_tokens: int | None, **overrides: Any
) -> Config:
    """The config with the generation flags; a longer --max-tokens than the window keeps free for
    the answer (`answer_reserve`) widens that reserve, or the answer would still stop there."""
    config = load_config(home, temperature=temperature, max_new_tokens=max_tokens, **overrides)
    if max_tokens is not None and max_tokens > config.answer_reserve:
        config = config.replace(answer_reserve=max_tokens)
    return config


def read_question(argument: str | None) -> str:
    """The question given, or read from stdin for `-` or when none is given and stdin is a pipe."""
    if argument is None or argument == "-":
        if argument is None and sys.stdin.isatty():
            raise InputError(
                'give a question: assistant ask "What ...?" (or pipe one in: ... | assistant ask)'
            )
        argument = sys.stdin.read()
    question = argument.strip()
    if not question:
        raise InputError("the question is empty")
    return question


@app.command("ask")
@handle_errors
def ask_command(
    question: Annotated[
        str | None,
        typer.Argument(
            help="Your question, in quotes; `-` (or none, with a pipe) reads it from stdin.",
            show_default=False,
        ),
    ] = None,
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, help="Passages to use.")] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Hugging Face id, local folder or .gguf file."),
    ] = None,
    temperature: TemperatureOption = None,
    max_tokens: MaxTokensOption = None,
    no_stream: NoStreamOption = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Answer a question from your documents, citing where each statement comes from."""
    from assistant.answer.pipeline import Answerer
    from assistant.cli.render import show_answer

    text = read_question(question)
    config = _generation_config(home, temperature, max_tokens, debug=debug, model=model, top_k=k)
    assistant_home = Home(config)
    if assistant_home.is_empty():
        _nothing_ingested(config, as_json)
    answerer = Answerer(assistant_home, _load_model(config))
    events = answerer.ask(text)
    if as_json:
        from assistant.answer.pipeline import Answer

        answers = [event for event in events if isinstance(event, Answer)]
        print(json.dumps(answers[-1].as_dict(), indent=2))
        return
    show_answer(console, events, stream=not no_stream)


def _load_model(config: Config) -> Any:
    """Load the language model, with a spinner on a terminal (the first run converts the GGUF)."""
    from assistant.llm.loader import load_chat_model

    with _busy("loading the language model…"):
        return load_chat_model(config)


def _busy(text: str) -> contextlib.AbstractContextManager[Any]:
    """A spinner saying `text` on a terminal; nothing in a pipe or a log."""
    return errors.status(text, spinner="dots") if errors.is_terminal else contextlib.nullcontext()


@app.command("chat")
@handle_errors
def chat_command(
    session: Annotated[
        str, typer.Option("--session", "-s", help="Session name: resumes it if it exists.")
    ] = "default",
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, help="Passages to use.")] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Hugging Face id, local folder or .gguf file."),
    ] = None,
    temperature: TemperatureOption = None,
    max_tokens: MaxTokensOption = None,
    no_stream: NoStreamOption = False,
    home: HomeOption = None,
    debug: DebugOption = False,
) -> None:
    """Talk with your documents: follow-up questions, sources, and memory across sessions."""
    from assistant.answer.pipeline import Answerer
    from assistant.chat.conversation import Conversation
    from assistant.chat.sessions import Sessions
    from assistant.cli.chat import ChatScreen

    config = _generation_config(home, temperature, max_tokens, debug=debug, model=model, top_k=k)
    assistant_home = Home(config)
    interactive = sys.stdin.isatty()
    if assistant_home.is_empty() and not _offer_sample_corpus(assistant_home, interactive):
        raise typer.Exit(1)
    answerer = Answerer(assistant_home, _load_model(config))
    sessions = Sessions(assistant_home.store)
    conversation = Conversation(answerer, sessions, sessions.open(session))

    def list_documents() -> list[str]:
        return [display_path(row.key) for row in assistant_home.store.documents()]

    ChatScreen(conversation, console, list_documents, interactive, stream=not no_stream).run()


def _sample_corpus() -> Path | None:
    """The bundled sample corpus, when running from a clone of the repository."""
    folder = Path(__file__).resolve().parents[2] / "corpora" / "sample"
    return folder if folder.is_dir() else None


def _offer_sample_corpus(assistant_home: Home, interactive: bool) -> bool:
    """Nothing is ingested: say how to ingest and offer the sample corpus; True if ingested."""
    sample = _sample_corpus()
    errors.print(f"[yellow]Nothing is ingested in {assistant_home.path} yet.[/]")
    errors.print("Ingest your documents first:  assistant ingest ~/Documents/notes")
    if sample is None:
        return False
    errors.print(f"or try the bundled sample corpus:  assistant ingest {display_path(str(sample))}")
    if not interactive:
        return False
    if not typer.confirm("Ingest the sample corpus now?", default=True):
        return False
    with assistant_home.writing():
        for event in ingest(assistant_home, [sample]):
            if isinstance(event, IngestSummary):
                _print_ingest_summary(event)
        assistant_home.save_index()
    return True


sessions_app = typer.Typer(help="List chat sessions, delete one, or export one.")
app.add_typer(sessions_app, name="sessions")


@sessions_app.callback(invoke_without_command=True)
@handle_errors
def sessions_command(
    context: typer.Context,
    delete: Annotated[
        str | None, typer.Option("--delete", help="Delete the session with this name.")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """List chat sessions, or delete one; `assistant sessions export NAME` writes one out."""
    from datetime import datetime

    from assistant.chat.sessions import Sessions

    if context.invoked_subcommand is not None:
        return
    config = load_config(home, debug=debug)
    sessions = Sessions(Home(config).store)
    if delete is not None:
        sessions.delete(delete)
        if as_json:
            print(json.dumps({"deleted": delete}))
        else:
            console.print(f"deleted session {escape(delete)}")
        return
    found = sessions.list()
    if as_json:
        print(json.dumps([info.__dict__ for info in found], indent=2))
        return
    if not found:
        console.print("[dim]No sessions yet; `assistant chat --session NAME` starts one.[/]")
        return
    table = Table(show_edge=False)
    table.add_column("session")
    table.add_column("turns", justify="right")
    table.add_column("last used")
    for info in found:
        when = datetime.fromtimestamp(info.updated_at).strftime("%Y-%m-%d %H:%M")
        table.add_row(escape(info.name), str(info.turns), when)
    console.print(table)


@sessions_app.command("export")
@handle_errors
def sessions_export_command(
    name: Annotated[str, typer.Argument(help="The session to export.")],
    export_format: Annotated[
        str, typer.Option("--format", "-f", help="md (Markdown) or json.")
    ] = "md",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of stdout."),
    ] = None,
    home: HomeOption = None,
    debug: DebugOption = False,
) -> None:
    """Write a session out for sharing: every question and answer, with the sources cited."""
    from assistant.chat.sessions import Sessions
    from assistant.chat.transcript import transcript_text

    config = load_config(home, debug=debug)
    session = Sessions(Home(config).store).find(name)
    text = transcript_text(session, export_format.lower(), display_path)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot write {output}: {error.strerror or error}") from None
    errors.print(f"wrote {len(session.history)} turn(s) of {escape(name)} to {escape(str(output))}")


@app.command("search")
@handle_errors
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many passages.")] = 5,
    mode: Annotated[
        str | None, typer.Option("--mode", help="dense, lexical or hybrid (default from config).")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Show the passages that best match a query, with where they come from."""
    if not query.strip():
        raise typer.BadParameter("the query is empty")
    config = load_config(home, debug=debug, retrieval_mode=mode)
    assistant_home = Home(config)
    if assistant_home.is_empty():
        _nothing_ingested(config, as_json)
    result = assistant_home.retriever().search(query, k)
    if as_json:
        print(json.dumps([p.as_dict() | {"source": p.source} for p in result.passages], indent=2))
        return
    for passage in result.passages:
        console.print(
            f"[bold cyan][{passage.rank}][/] [bold]{escape(passage_location(passage))}[/]"
            f"  [dim]{escape(passage.heading)}  score {passage.score:.3f}[/]"
        )
        console.print(escape(_preview(passage.text)), highlight=False)
        console.print()
    console.print(f"[dim]{result.mode} search, {result.milliseconds:.0f} ms[/]")


def _preview(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " …"


def _nothing_ingested(config: Config, as_json: bool) -> NoReturn:
    """Stop a command that needs documents: the hint on a terminal, one JSON error under --json."""
    if as_json:
        raise InputError(f"nothing is ingested in {config.home} yet; run `assistant ingest` first")
    _empty_home_hint(config)
    raise typer.Exit(1)


def _empty_home_hint(config: Config) -> None:
    sample = _sample_corpus()
    example = (
        f"the bundled sample corpus:\n  assistant ingest {display_path(str(sample))}"
        if sample is not None
        else "\n  assistant ingest ~/Documents/notes"
    )
    errors.print(
        f"[yellow]Nothing is ingested in {config.home} yet.[/] Ingest a folder first, for example "
        + example
    )


# --- docs, forget, info, reindex -------------------------------------------------------------


@app.command("docs")
@handle_errors
def docs_command(
    home: HomeOption = None, as_json: JsonOption = False, debug: DebugOption = False
) -> None:
    """List the ingested documents."""
    config = load_config(home, debug=debug)
    rows = Home(config).store.documents()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "source": row.key,
                        "path": row.path,
                        "format": row.format,
                        "title": row.title,
                        "chunks": row.chunk_count,
                        "size": row.size,
                        "content_hash": row.content_hash,
                    }
                    for row in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        _empty_home_hint(config)
        return
    table = Table(show_edge=False)
    table.add_column("document")
    table.add_column("format")
    table.add_column("title")
    table.add_column("chunks", justify="right")
    for row in rows:
        table.add_row(
            escape(display_path(row.key)), row.format, escape(row.title or ""), str(row.chunk_count)
        )
    console.print(table)
    console.print(f"[dim]{len(rows)} documents[/]")


@app.command("forget")
@handle_errors
def forget_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to remove from the index.")],
    home: HomeOption = None,
    debug: DebugOption = False,
) -> None:
    """Remove documents (their rows and vectors); the files themselves are not touched."""
    config = load_config(home, debug=debug)
    assistant_home = Home(config)
    with assistant_home.writing():
        store = assistant_home.store
        targets: set[str] = set()
        for path in paths:
            resolved = str(path.expanduser().resolve())
            targets.update(row.path for row in store.documents(resolved))
        if not targets:
            raise AssistantError(
                f"nothing ingested under {', '.join(str(p) for p in paths)}; "
                "see `assistant docs` for what is"
            )
        removed = store.forget_paths(sorted(targets))
        assistant_home.index.remove(removed)
        assistant_home.close()
    console.print(f"forgot {len(targets)} file(s), {len(removed)} chunks")


@app.command("reindex")
@handle_errors
def reindex_command(home: HomeOption = None, debug: DebugOption = False) -> None:
    """Rebuild the vector index from the embeddings stored in the database."""
    config = load_config(home, debug=debug)
    assistant_home = Home(config)
    with assistant_home.writing():
        added = assistant_home.rebuild_index()
        assistant_home.close()
    console.print(f"rebuilt the vector index: {added} vectors")


@app.command("info")
@handle_errors
def info_command(
    home: HomeOption = None, as_json: JsonOption = False, debug: DebugOption = False
) -> None:
    """Show where state lives, what is ingested, and which models and device are used."""
    from assistant.calibration import cpu_summary
    from assistant.devices import choose_device
    from assistant.embed.embedder import choose_backend
    from assistant.llm import loader as engines

    config = load_config(home, debug=debug)
    assistant_home = Home(config)
    check = assistant_home.check()  # the database's own check, and the index against it
    store = assistant_home.store if check.database == "ok" else None
    index_path = config.index_path
    details: dict[str, Any] = {
        "home": str(config.home),
        "database": config.database,
        "database_check": check.database,
        "writable": assistant_home.writable(),
        "index": str(index_path),
        "index_bytes": index_path.stat().st_size if index_path.exists() else 0,
        "index_state": check.index,
        **(store.counts() if store is not None else {}),
        "embedding_model": config.embedding_model,
        "embedding_backend": choose_backend(config.embedding_backend, choose_device(config.device)),
        "language_model": config.model,
        "device": choose_device(config.device),
        "cpu": cpu_summary(),
        "engine": engines.describe(config),
        **_kernel_choices(config),
        "retrieval_mode": config.retrieval_mode,
    }
    if store is not None:
        details |= {"lexical_search": store.has_lexical, "migrations": store.applied_migrations()}
    if as_json:
        print(json.dumps(details | {"problems": check.problems}, indent=2))
    else:
        table = Table(show_header=False, show_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for key, value in details.items():
            table.add_row(key, escape(", ".join(value) if isinstance(value, list) else str(value)))
        console.print(table)
        for problem in check.problems:
            errors.print(f"[bold red]problem:[/] {escape(problem)}")
    if check.problems:
        raise typer.Exit(1)


@app.command("calibrate")
@handle_errors
def calibrate_command(
    home: HomeOption = None, as_json: JsonOption = False, debug: DebugOption = False
) -> None:
    """Measure again which engine and kernels are fastest on this CPU (keep the machine quiet)."""
    from assistant.llm import loader as engines

    config = load_config(home, debug=debug)
    with _busy("measuring this CPU…"):
        engines.measure_again(config)
    details = {"engine": engines.describe(config), **_kernel_choices(config)}
    if as_json:
        print(json.dumps(details, indent=2))
        return
    for key, value in details.items():
        console.print(f"[bold]{key}[/] {escape(value)}")


@app.command("repair")
@handle_errors
def repair_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Folders and files to ingest again, besides those the database names."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even when the database passes its check.")
    ] = False,
    home: HomeOption = None,
    debug: DebugOption = False,
) -> None:
    """Rebuild a damaged database from your files; the damaged one is kept beside it."""
    from assistant.ingest.repair import RepairReport, repair

    config = load_config(home, debug=debug)
    assistant_home = Home(config)
    report: RepairReport | None = None
    with assistant_home.writing():
        with _busy("repairing…"):
            for event in repair(assistant_home, paths or [], force):
                if isinstance(event, RepairReport):
                    report = event
        assistant_home.close()
    if report is None:  # pragma: no cover - repair always ends with a report
        return
    if report.moved_to is None:
        console.print(
            "the database passed its integrity check: nothing to repair (`--force` rebuilds it "
            "anyway; `assistant reindex` rebuilds the vector index)"
        )
        return
    console.print(f"the damaged database is kept as {escape(str(report.moved_to))}")
    if report.summary is not None:
        _print_ingest_summary(report.summary)
    if report.sessions_kept:
        console.print(
            f"kept {report.sessions_kept} chat session(s) with {report.messages_kept} turn(s)"
        )
    lost = report.lost()
    for line in lost:
        console.print(f"[yellow]lost:[/] {escape(line)}")
    if not lost:
        console.print("[green]nothing was lost[/]")


def _kernel_choices(config: Config) -> dict[str, str]:
    """What the torch engine runs on this CPU and the numbers behind it (`kernel_plan`), and
    whether the C attention kernel can run here at all (and if not, why)."""
    from assistant.devices import choose_device
    from assistant.llm.attention import PromptAttention
    from assistant.llm.kernel_plan import cached_plan, describe

    if choose_device(config.device) != "cpu":
        return {}
    reason = PromptAttention.unavailable_reason(config.models_dir / "kernels")
    kernel = {"attention_kernel": "available" if reason is None else f"unavailable: {reason}"}
    plan = cached_plan(config)
    if plan is None:
        return {"torch_kernels": "measured at the first question (once per CPU)", **kernel}
    return {**{f"torch_{name}": line for name, line in describe(plan).items()}, **kernel}


# --- eval ------------------------------------------------------------------------------------

eval_app = typer.Typer(help="Measure retrieval, grounding and hallucination on external data.")
app.add_typer(eval_app, name="eval")

JsonOutOption = Annotated[
    Path | None, typer.Option("--json-out", help="Write the metrics and settings as JSON.")
]
RecordsOption = Annotated[
    Path | None, typer.Option("--records", help="Write one JSON line per evaluated item.")
]


def _run_suite(events: Any, json_out: Path | None, records: Path | None) -> Any:
    """Draw a progress bar over a suite's events; print and save its report."""
    from assistant.evals.report import EvalProgress, EvalReport, write_records, write_report

    report: EvalReport | None = None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=not errors.is_terminal,
    ) as progress:
        task = progress.add_task("evaluating", total=None)
        for event in events:
            if isinstance(event, EvalProgress):
                progress.update(
                    task,
                    description=event.label or "evaluating",
                    completed=event.done,
                    total=event.total or None,
                )
            elif isinstance(event, EvalReport):
                report = event
    if report is None:  # pragma: no cover - suites always end with a report
        raise AssistantError("the evaluation produced no report")
    _print_metrics(report.metrics, f"{report.suite}: {report.dataset} (n={report.n})")
    console.print(f"[dim]{report.seconds:.1f} s[/]")
    if json_out is not None:
        write_report(report, json_out)
        console.print(f"[dim]wrote {json_out}[/]")
    if records is not None:
        write_records(report.records, records)
        console.print(f"[dim]wrote {records}[/]")
    return report


def _print_metrics(metrics: dict[str, Any], title: str) -> None:
    table = Table(title=title, show_edge=False)
    nested = all(isinstance(value, dict) for value in metrics.values())
    if nested:
        names = list(next(iter(metrics.values())).keys()) if metrics else []
        table.add_column("mode")
        for name in names:
            table.add_column(name, justify="right")
        for mode, values in metrics.items():
            table.add_row(mode, *(_format_metric(values[name]) for name in names))
    else:
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in metrics.items():
            table.add_row(name, _format_metric(value))
    console.print(table)


def _format_metric(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4f}"
    return str(value)


def _eval_home(home: Path | None, debug: bool) -> tuple[Config, Any]:
    """The home an eval ingests into: the one given, or a fresh temporary folder."""
    import tempfile

    if home is not None:
        return load_config(home, debug=debug), None
    temporary = tempfile.TemporaryDirectory(prefix="assistant-eval-")
    return load_config(Path(temporary.name), debug=debug), temporary


@eval_app.command("retrieval")
@handle_errors
def eval_retrieval_command(
    corpus: Annotated[Path, typer.Option("--corpus", help="BEIR corpus.jsonl.")],
    queries: Annotated[Path, typer.Option("--queries", help="BEIR queries .jsonl.")],
    qrels: Annotated[Path, typer.Option("--qrels", help="BEIR qrels .tsv.")],
    mode: Annotated[str, typer.Option("--mode", help="dense, lexical, hybrid or all.")] = "all",
    k: Annotated[int, typer.Option("--k", min=1, help="Cut-off for the records.")] = 10,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N queries.")] = None,
    home: HomeOption = None,
    json_out: JsonOutOption = None,
    records: RecordsOption = None,
    debug: DebugOption = False,
) -> None:
    """nDCG@10, recall@1/5/10 and MRR@10 of each retrieval mode on a BEIR data set."""
    from assistant.evals.retrieval import run_retrieval_eval
    from assistant.index.retrieval import MODES

    for path in (corpus, queries, qrels):
        if not path.is_file():
            raise AssistantError(f"no such file: {path}")
    if mode != "all" and mode not in MODES:
        raise AssistantError(f"--mode must be dense, lexical, hybrid or all, not {mode!r}")
    modes = list(MODES) if mode == "all" else [mode]
    config, temporary = _eval_home(home, debug)
    assistant_home = Home(config)
    try:
        with assistant_home.writing():
            events = run_retrieval_eval(assistant_home, corpus, queries, qrels, modes, k, limit)
            _run_suite(events, json_out, records)
    finally:
        assistant_home.close()
        if temporary is not None:
            temporary.cleanup()


@eval_app.command("qa")
@handle_errors
def eval_qa_command(
    docs: Annotated[Path, typer.Option("--docs", help="Folder of documents to answer from.")],
    questions: Annotated[
        Path, typer.Option("--questions", help="SQuAD 2.0-style questions .jsonl.")
    ],
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="A seeded sample, half answerable, half not."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
    model: Annotated[str | None, typer.Option("--model", help="Language model.")] = None,
    home: HomeOption = None,
    json_out: JsonOutOption = None,
    records: RecordsOption = None,
    debug: DebugOption = False,
) -> None:
    """Exact match, F1, abstention, citation accuracy and latency of `ask` on a QA set."""
    from assistant.evals.qa import run_qa_eval

    if not docs.is_dir():
        raise AssistantError(f"no such folder: {docs}")
    if not questions.is_file():
        raise AssistantError(f"no such file: {questions}")
    config, temporary = _eval_home(home, debug)
    config = config.replace(model=model, temperature=0.0)
    assistant_home = Home(config)
    try:
        with assistant_home.writing():
            events = run_qa_eval(assistant_home, _load_model(config), docs, questions, limit, seed)
            _run_suite(events, json_out, records)
    finally:
        assistant_home.close()
        if temporary is not None:
            temporary.cleanup()


@eval_app.command("hallucination")
@handle_errors
def eval_hallucination_command(
    data: Annotated[Path, typer.Option("--data", help="HaluEval qa_data.jsonl.")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="A seeded sample.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
    json_out: JsonOutOption = None,
    records: RecordsOption = None,
    debug: DebugOption = False,
) -> None:
    """How well the support checker tells grounded answers from hallucinated ones (HaluEval)."""
    from assistant.embed.embedder import Embedder
    from assistant.evals.hallucination import run_hallucination_eval
    from assistant.grounding.checker import SupportChecker

    if not data.is_file():
        raise AssistantError(f"no such file: {data}")
    config = load_config(None, debug=debug)
    embedder = Embedder.from_config(config)
    checker = SupportChecker(
        embedder.embed,
        threshold=config.support_threshold,
        min_evidence_score=config.min_retrieval_score,
    )
    events = run_hallucination_eval(checker, data, limit, seed, config.embedding_model)
    _run_suite(events, json_out, records)
