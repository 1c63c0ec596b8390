"""Measure follow-up rewriting: does a follow-up question retrieve the passages of its topic?

For every follow-up pair of `evals/sets/sample-qa.jsonl` (a question, then one that only makes
sense after it), the follow-up is searched four ways over the sample corpus, with the real
retriever (hybrid, the default `top_k`):

- `raw`: the follow-up as typed, as if there were no memory;
- `rewritten`: `memory.rewrite_query` with the previous turn (its question, and its gold answer
  as the assistant's answer), what `assistant chat` does;
- `rewritten_no_answer`: the same when the previous answer was an abstention (question only);
- `standalone`: the hand-written standalone question of the set, the ceiling.

A hit is a retrieved passage from the gold source file. The questions that are not follow-ups
are checked too: the rewriter must leave them unchanged when they come after another question.
No language model runs, so this takes seconds:

    python evals/follow_ups.py [--out evals/results/follow-ups.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant.answer.memory import Turn, rewrite_query
from assistant.config import Config
from assistant.index.home import Home
from assistant.ingest.pipeline import ingest

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "evals/sets/sample-qa.jsonl"
CORPUS = ROOT / "corpora/sample"
VARIANTS = ("raw", "rewritten", "rewritten_no_answer", "standalone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "evals/results/follow-ups.json")
    arguments = parser.parse_args()
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    by_id = {row["id"]: row for row in rows}
    pairs = [(by_id[row["follow_up_of"]], row) for row in rows if row.get("follow_up_of")]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="follow-ups-") as scratch:
        config = Config.load(home=Path(scratch))
        home = Home(config)
        for _ in ingest(home, [CORPUS]):
            pass
        retriever = home.retriever()
        k = config.top_k
        records: list[dict[str, Any]] = []
        for first, follow_up in pairs:
            answer = first["answers"][0] if first.get("answers") else ""
            question = follow_up["question"]
            queries = {
                "raw": question,
                "rewritten": rewrite_query(question, [Turn(first["question"], answer)]),
                "rewritten_no_answer": rewrite_query(question, [Turn(first["question"], "")]),
                "standalone": follow_up.get("standalone") or follow_up["question"],
            }
            gold = Path(follow_up["source"]).name
            record: dict[str, Any] = {"id": follow_up["id"], "gold": gold}
            for variant, query in queries.items():
                sources = [Path(p.source).name for p in retriever.search(query, k).passages]
                rank = sources.index(gold) + 1 if gold in sources else None
                record[variant] = {"query": query, "rank": rank}
            records.append(record)
        # Questions that are not follow-ups, each asked after the question before it.
        plain = [row for row in rows if not row.get("follow_up_of")]
        changed = [
            later["id"]
            for earlier, later in itertools.pairwise(plain)
            if rewrite_query(later["question"], [Turn(earlier["question"], "")])
            != later["question"]
        ]
        home.close()
    metrics: dict[str, float] = {}
    for variant in VARIANTS:
        ranks = [record[variant]["rank"] for record in records]
        metrics[f"{variant}_hit@1"] = sum(rank == 1 for rank in ranks) / len(ranks)
        metrics[f"{variant}_hit@{k}"] = sum(rank is not None for rank in ranks) / len(ranks)
        metrics[f"{variant}_mrr"] = sum(1 / rank for rank in ranks if rank) / len(ranks)
    metrics["non_follow_ups_changed"] = len(changed) / max(1, len(plain) - 1)
    print(f"{len(records)} follow-up pairs, top {k}, hybrid retrieval over {CORPUS.name}")
    print(f"{'variant':22} {'hit@1':>7} {f'hit@{k}':>7} {'MRR':>7}")
    for variant in VARIANTS:
        print(
            f"{variant:22} {metrics[f'{variant}_hit@1']:7.3f} "
            f"{metrics[f'{variant}_hit@{k}']:7.3f} {metrics[f'{variant}_mrr']:7.3f}"
        )
    print(f"non-follow-up questions changed by the rewriter: {changed or 'none'}")
    result = {
        "suite": "follow-ups",
        "command": "python evals/follow_ups.py",
        "dataset": str(QUESTIONS.relative_to(ROOT)),
        "n": len(records),
        "k": k,
        "metrics": metrics,
        "changed_non_follow_ups": changed,
        "records": records,
        "seconds": time.perf_counter() - started,
        "date": time.strftime("%Y-%m-%d"),
    }
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
