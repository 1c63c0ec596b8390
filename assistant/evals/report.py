"""What every eval suite returns and writes: metrics, the settings used, and per-item records.

A suite is a generator of `EvalProgress` events ending with an `EvalReport`, so the CLI can draw a
progress bar. `write_report` saves `{suite, metrics, config, model, dataset, n, started, seconds}`
as JSON, and `write_records` the per-item records as JSONL, so failures can be read one by one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.files import write_text_atomically


@dataclass(frozen=True)
class EvalProgress:
    done: int
    total: int
    label: str = ""


@dataclass
class EvalReport:
    suite: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    model: str
    dataset: str
    n: int
    started: str
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "metrics": _finite(self.metrics),
            "config": self.config,
            "model": self.model,
            "dataset": self.dataset,
            "n": self.n,
            "started": self.started,
            "seconds": round(self.seconds, 2),
        }


def _finite(value: Any) -> Any:
    """JSON has no NaN: a metric with no items to average becomes null."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    return value


def write_report(report: EvalReport, path: Path) -> None:
    write_text_atomically(path, json.dumps(report.summary(), indent=2) + "\n")


def write_records(records: Iterable[Mapping[str, Any]], path: Path) -> None:
    write_text_atomically(path, "".join(json.dumps(_finite(dict(r))) + "\n" for r in records))
