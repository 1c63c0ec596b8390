"""Each eval suite end to end on a tiny slice of the shared data (skipped when it is absent)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli.app import app
from tests.conftest import shared_data

pytestmark = pytest.mark.e2e

QA_METRICS = (
    "exact_match",
    "f1",
    "abstain_rate_unanswerable",
    "hallucination_rate",
    "false_abstain_rate_answerable",
    "citation_precision",
    "citation_recall",
    "faithfulness",
    "retrieval_hit@k",
    "retrieval_hit@k_follow_ups",
    "latency_median_s",
    "latency_p95_s",
)


def _invoke(environment: dict[str, str], *arguments: str) -> None:
    result = CliRunner().invoke(app, list(arguments), env=environment)
    assert result.exit_code == 0, result.output


@pytest.fixture
def environment(tmp_path: Path, model_cache: Path) -> dict[str, str]:
    return {"ASSISTANT_HOME": str(tmp_path / "home"), "ASSISTANT_CACHE_DIR": str(model_cache)}


def _in_range(metrics: dict[str, object]) -> None:
    for name, value in metrics.items():
        if isinstance(value, dict):
            _in_range(value)
        elif value is not None and not name.startswith("latency"):
            assert isinstance(value, float) and 0.0 <= value <= 1.0, (name, value)


def _check_report(path: Path, suite: str, n: int) -> dict[str, object]:
    report = json.loads(path.read_text())
    assert set(report) == {
        "suite",
        "metrics",
        "config",
        "model",
        "dataset",
        "n",
        "started",
        "seconds",
    }
    assert report["suite"] == suite and report["n"] == n
    _in_range(report["metrics"])
    return report


def test_retrieval_suite_on_a_scifact_slice(environment: dict[str, str], tmp_path: Path) -> None:
    scifact = shared_data("scifact")
    qrels_lines = (scifact / "qrels" / "train.tsv").read_text().splitlines()
    header, rows = qrels_lines[0], [line.split("\t") for line in qrels_lines[1:6]]
    wanted_docs = {row[1] for row in rows}
    wanted_queries = {row[0] for row in rows}
    corpus = tmp_path / "corpus.jsonl"
    with (scifact / "corpus.jsonl").open() as source, corpus.open("w") as target:
        for number, line in enumerate(source):
            if number < 40 or json.loads(line)["_id"] in wanted_docs:
                target.write(line)
    queries = tmp_path / "queries.jsonl"
    with (scifact / "queries_train.jsonl").open() as source, queries.open("w") as target:
        target.writelines(line for line in source if json.loads(line)["_id"] in wanted_queries)
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("\n".join([header, *("\t".join(row) for row in rows)]) + "\n")
    out, records = tmp_path / "out.json", tmp_path / "records.jsonl"
    _invoke(environment, "eval", "retrieval", "--corpus", str(corpus), "--queries", str(queries),
            "--qrels", str(qrels), "--json-out", str(out), "--records", str(records))  # fmt: skip
    report = _check_report(out, "retrieval", len(wanted_queries))
    metrics = report["metrics"]
    assert set(metrics) == {"dense", "lexical", "hybrid"}  # type: ignore[arg-type]
    assert metrics["hybrid"]["recall@10"] > 0.5  # type: ignore[index]
    assert len(records.read_text().splitlines()) == len(wanted_queries)


def test_hallucination_suite_on_a_halueval_slice(
    environment: dict[str, str], tmp_path: Path
) -> None:
    data = shared_data("halueval-qa") / "qa_data.jsonl"
    out, records = tmp_path / "out.json", tmp_path / "records.jsonl"
    _invoke(environment, "eval", "hallucination", "--data", str(data), "--limit", "10",
            "--json-out", str(out), "--records", str(records))  # fmt: skip
    report = _check_report(out, "hallucination", 10)
    metrics = {"accuracy", "balanced_accuracy", "precision", "recall", "f1"}
    assert set(report["metrics"]) == metrics  # type: ignore[arg-type]
    assert len(records.read_text().splitlines()) == 20  # right and hallucinated answer per row


def test_qa_suite_on_a_squad_slice(environment: dict[str, str], tmp_path: Path) -> None:
    squad = shared_data("squad2-dev")
    docs = tmp_path / "docs"
    docs.mkdir()
    title = "Sky_(United_Kingdom)"
    (docs / f"{title}.txt").write_text((squad / "docs" / f"{title}.txt").read_text())
    questions = tmp_path / "questions.jsonl"
    with (squad / "questions.jsonl").open() as source:
        lines = [line for line in source if json.loads(line)["title"] == title]
    questions.write_text("".join(lines))
    out, records = tmp_path / "out.json", tmp_path / "records.jsonl"
    arguments = ["--limit", "4", "--seed", "0", "--json-out", str(out), "--records", str(records)]
    _invoke(
        environment, "eval", "qa", "--docs", str(docs), "--questions", str(questions), *arguments
    )
    report = _check_report(out, "qa", 4)
    metrics = report["metrics"]
    assert set(metrics) == set(QA_METRICS)  # type: ignore[arg-type]
    assert metrics["latency_median_s"] > 0  # type: ignore[index]
    rates = metrics["abstain_rate_unanswerable"], metrics["hallucination_rate"]  # type: ignore[index]
    assert math.isclose(rates[0] + rates[1], 1.0)
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert sum(1 for line in lines if line["is_impossible"]) == 2


def test_malformed_eval_files_name_file_and_line(
    environment: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(
        json.dumps(
            {"knowledge": "k", "question": "q", "right_answer": "r", "hallucinated_answer": "h"}
        )
        + "\n{oops\n"
    )
    result = CliRunner().invoke(
        app, ["eval", "hallucination", "--data", str(data)], env=environment
    )
    assert result.exit_code == 1
    assert "bad.jsonl" in result.output and "line 2" in result.output
    assert "Traceback" not in result.output
