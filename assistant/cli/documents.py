"""The commands over what is ingested: `ingest`, `search`, `docs`, `forget`, `reindex`, `repair`.

Also the hints for an empty home (`nothing_ingested`, the bundled sample corpus) and the ingest
summary, which `ask` and `chat` use as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from assistant.cli import command
from assistant.cli.command import (
    DebugOption,
    HomeOption,
    InOption,
    JsonOption,
    handle_errors,
    load_config,
)
from assistant.cli.render import display_location, display_path, scope_line, shorten
from assistant.config import Config
from assistant.errors import AssistantError, InputError
from assistant.index.home import Home
from assistant.index.scope import resolve_scope

if TYPE_CHECKING:
    from assistant.ingest.pipeline import IngestSummary
    from assistant.ingest.watch import WatchEvent

SEARCH_PREVIEW = 400  # characters of each passage `search` shows


@handle_errors
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Folders and files to ingest.")],
    watching: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="After the first pass, follow changes and re-ingest what changed "
            "(grouped until the folders are quiet for 0.5 s); Ctrl-C stops.",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Read, chunk and index documents; re-running only processes what changed."""
    # Here, not at the top: the readers and chunking are no part of the other commands' start.
    from assistant.ingest.pipeline import IngestProgress, IngestSummary, ingest
    from assistant.ingest.watch import watch  # watchfiles: only for --watch

    config = load_config(home, debug=debug)
    assistant_home = Home(config)
    with assistant_home.writing():
        summary: IngestSummary | None = None
        stop = threading.Event()
        events: Iterator[WatchEvent] = (
            watch(assistant_home, paths, stop) if watching else ingest(assistant_home, paths)
        )
        show_bar = not as_json and command.console.is_terminal
        progress = Progress(
            TextColumn("[bold]Ingesting[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            TextColumn("{task.fields[chunks]} chunks"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[current]}"),
            console=command.console,
            disable=not show_bar,
            transient=False,
        )
        interrupts = _stop_on_interrupt(stop) if watching else contextlib.nullcontext()
        try:
            with interrupts:
                with progress:
                    task = progress.add_task("ingest", total=None, chunks=0, rate="", current="")
                    started = time.perf_counter()
                    for event in events:
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
                        elif isinstance(event, IngestSummary):
                            summary = event
                            progress.update(task, completed=progress.tasks[0].total, current="")
                            break
                        else:  # stopped during the first pass: its last line follows
                            events = itertools.chain([event], events)
                            break
                if summary is not None:
                    if as_json and watching:
                        print(json.dumps({"event": "ingested"} | summary.as_dict()), flush=True)
                    elif as_json:
                        print(json.dumps(summary.as_dict(), indent=2))
                    else:
                        print_ingest_summary(summary)
                if watching:
                    _follow_changes(events, as_json)
        finally:
            assistant_home.close()


@contextlib.contextmanager
def _stop_on_interrupt(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C asks the watch to stop (at its next commit, with the index saved); a
    second one interrupts at once, as Ctrl-C does elsewhere."""

    def interrupted(signal_number: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _follow_changes(events: Iterator[WatchEvent], as_json: bool) -> None:
    """Print what `watch` does after the first pass: one line per batch, then a last summary."""
    from assistant.ingest.watch import Reingested, Watching, WatchStopped

    for event in events:
        if isinstance(event, Watching):
            if as_json:
                print(json.dumps({"event": "watching", "roots": event.roots}), flush=True)
            else:
                folders = ", ".join(display_path(root) for root in event.roots)
                command.console.print(f"[dim]watching {escape(folders)} (Ctrl-C stops)[/]")
        elif isinstance(event, Reingested):
            summary = event.summary
            if as_json:
                changes = [{"change": kind, "path": path} for kind, path in event.changes]
                line = {"event": "reingested", "changes": changes} | summary.as_dict()
                print(json.dumps(line), flush=True)
                continue
            changed = [path for _, path in event.changes]
            names = ", ".join(display_path(path) for path in changed[:3])
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            command.console.print(
                f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(names)}{more}: "
                f"added {len(summary.added)}  updated {len(summary.updated)}  "
                f"removed {len(summary.removed)}   ({summary.chunks_added} chunks in "
                f"{summary.seconds:.1f} s)"
            )
            for item in summary.skipped:
                if item.path in changed:  # the others were reported before
                    command.console.print(
                        f"  [yellow]skipped[/] {escape(display_path(item.path))}: "
                        f"{escape(item.reason)}"
                    )
            _print_notes(summary)
        elif isinstance(event, WatchStopped):
            if as_json:
                print(json.dumps({"event": "stopped"} | dataclasses.asdict(event)), flush=True)
            else:
                command.console.print(
                    f"stopped watching: {event.batches} change(s) handled, "
                    f"added {event.added}  updated {event.updated}  removed {event.removed}  "
                    f"({event.chunks_added} chunks added); the index is saved"
                )


def print_ingest_summary(summary: IngestSummary) -> None:
    command.console.print(
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
            command.console.print(
                f"  [yellow]skipped[/] {count} × {escape(reason)}: {escape(shown)}{more}"
            )
        command.console.print("  [dim](--json lists every skipped file)[/]")
    _print_notes(summary)


def _print_notes(summary: IngestSummary, shown: int = 10) -> None:
    """What to know about files that were ingested (pages read by OCR, or needing it)."""
    for item in summary.notes[:shown]:
        command.console.print(
            f"  [yellow]note[/] {escape(display_path(item.path))}: {escape(item.note)}"
        )
    if len(summary.notes) > shown:
        command.console.print(
            f"  [dim]and {len(summary.notes) - shown} more notes (--json lists them)[/]"
        )


@handle_errors
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many passages.")] = 5,
    mode: Annotated[
        str | None, typer.Option("--mode", help="dense, lexical or hybrid (default from config).")
    ] = None,
    within: InOption = None,
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
        nothing_ingested(config, as_json)
    scope = resolve_scope(within or [], assistant_home.store)
    result = assistant_home.retriever().search(query, k, scope=scope)
    if as_json:
        found = {
            "query": query,
            "mode": result.mode,
            "scope": list(scope.paths) if scope is not None else None,
            "milliseconds": round(result.milliseconds, 1),
            "passages": [p.as_dict() | {"source": p.source} for p in result.passages],
        }
        print(json.dumps(found, indent=2))
        return
    if scope is not None:
        command.console.print(scope_line(scope.paths))
    for passage in result.passages:
        command.console.print(
            f"[bold cyan][{passage.rank}][/] [bold]{escape(display_location(passage))}[/]"
            f"  [dim]{escape(passage.heading)}  score {passage.score:.3f}[/]"
        )
        command.console.print(escape(shorten(passage.text, SEARCH_PREVIEW)), highlight=False)
        command.console.print()
    command.console.print(f"[dim]{result.mode} search, {result.milliseconds:.0f} ms[/]")


def sample_corpus() -> Path | None:
    """The bundled sample corpus, when running from a clone of the repository."""
    folder = Path(__file__).resolve().parents[2] / "corpora" / "sample"
    return folder if folder.is_dir() else None


def nothing_ingested(config: Config, as_json: bool) -> NoReturn:
    """Stop a command that needs documents: the hint on a terminal, one JSON error under --json."""
    if as_json:
        raise InputError(f"nothing is ingested in {config.home} yet; run `assistant ingest` first")
    _empty_home_hint(config)
    raise typer.Exit(1)


def _empty_home_hint(config: Config) -> None:
    sample = sample_corpus()
    example = (
        f"the bundled sample corpus:\n  assistant ingest {display_path(str(sample))}"
        if sample is not None
        else "\n  assistant ingest ~/Documents/notes"
    )
    command.errors.print(
        f"[yellow]Nothing is ingested in {config.home} yet.[/] Ingest a folder first, for example "
        + example
    )


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
    command.console.print(table)
    command.console.print(f"[dim]{len(rows)} documents[/]")


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
        removed = assistant_home.forget(sorted(targets))
        assistant_home.close()
    command.console.print(f"forgot {len(targets)} file(s), {len(removed)} chunks")


@handle_errors
def reindex_command(home: HomeOption = None, debug: DebugOption = False) -> None:
    """Rebuild the vector index from the embeddings stored in the database."""
    config = load_config(home, debug=debug)
    assistant_home = Home(config)
    with assistant_home.writing():
        added = assistant_home.rebuild_index()
        assistant_home.close()
    command.console.print(f"rebuilt the vector index: {added} vectors")


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
    """Rebuild a damaged database from your files; the damaged one is kept beside it.

    On PostgreSQL: write the vectors of the chunks that lack one (`--force`: of every chunk).
    """
    from assistant.ingest.repair import RepairReport, repair

    config = load_config(home, debug=debug)
    assistant_home = Home(config)
    report: RepairReport | None = None
    with assistant_home.writing():
        with command.busy("repairing…"):
            for event in repair(assistant_home, paths or [], force):
                if isinstance(event, RepairReport):
                    report = event
        assistant_home.close()
    if report is None:  # pragma: no cover - repair always ends with a report
        return
    if report.vectors_written is not None:  # PostgreSQL: the vectors, not the database
        for problem in report.problems:
            command.console.print(f"[yellow]found:[/] {escape(problem)}")
        if report.vectors_written:
            command.console.print(
                f"wrote the vectors of {report.vectors_written} chunk(s) from their stored "
                "embeddings"
            )
        else:
            command.console.print(
                "every chunk has its vector: nothing to repair (PostgreSQL keeps its own pages; "
                "restore a damaged database from its backup)"
            )
        return
    if report.moved_to is None:
        command.console.print(
            "the database passed its integrity check: nothing to repair (`--force` rebuilds it "
            "anyway; `assistant reindex` rebuilds the vector index)"
        )
        return
    command.console.print(f"the damaged database is kept as {escape(str(report.moved_to))}")
    if report.summary is not None:
        print_ingest_summary(report.summary)
    if report.sessions_kept:
        command.console.print(
            f"kept {report.sessions_kept} chat session(s) with {report.messages_kept} turn(s)"
        )
    lost = report.lost()
    for line in lost:
        command.console.print(f"[yellow]lost:[/] {escape(line)}")
    if not lost:
        command.console.print("[green]nothing was lost[/]")
