"""`assistant eval`: the evaluation suites (`assistant.evals`) over external data sets, each drawn
as a progress bar and a table of metrics, optionally saved as JSON and per-item records."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assistant.cli import command
from assistant.cli.answers import load_model
from assistant.cli.command import DebugOption, HomeOption, handle_errors, load_config
from assistant.config import Config
from assistant.errors import AssistantError
from assistant.index.home import Home

eval_app = typer.Typer(help="Measure retrieval, grounding and hallucination on external data.")

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
        console=command.errors,
        disable=not command.errors.is_terminal,
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
    command.console.print(f"[dim]{report.seconds:.1f} s[/]")
    if json_out is not None:
        write_report(report, json_out)
        command.console.print(f"[dim]wrote {json_out}[/]")
    if records is not None:
        write_records(report.records, records)
        command.console.print(f"[dim]wrote {records}[/]")
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
    command.console.print(table)


def _format_metric(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4f}"
    return str(value)


def _eval_home(home: Path | None, debug: bool) -> tuple[Config, Any]:
    """The home an eval ingests into: the one given, or a fresh temporary folder."""
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
    article: Annotated[
        list[str] | None,
        typer.Option(
            "--article",
            metavar="TITLE",
            help="Only the questions of this article title (repeatable; titles may hold commas).",
        ),
    ] = None,
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
            events = run_qa_eval(
                assistant_home, load_model(config), docs, questions, limit, seed, article or ()
            )
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
        verifier=config.verifier,
    )
    events = run_hallucination_eval(checker, data, limit, seed, config.embedding_model)
    _run_suite(events, json_out, records)
