"""The cost of checking an answer: the hand-set rules against the trained verifier, same answers.

`end_to_end.py` times whole answers; on a shared 2-core machine the language model's time varies
by seconds between runs and hides a difference of a few hundred milliseconds. This script holds
everything else fixed: the raw answers a QA eval already generated (its `--records` file), the
passages `ask` retrieves for their queries, and it times only the work that differs between the
two checkers: the give-up watch while streaming (fed the answer word by word) and the final check
with its quotes and answer-type rule. Before that, as in `ask` before the first piece, the
abstention check before generating runs (the weak-evidence check and the question's names and
numbers: the same code for both kinds; it fills the embedding cache), timed on its own as
`before_first_piece`. Every answer gets a fresh checker of each kind (cold caches, as one
`assistant ask`), the two in alternating order after one untimed pass of each on the first answer
(first calls into the tokenizers and kernels cost extra); the verifier's one-time load (lazy, at
its first check, so after the first piece) is timed on its own.

    python evals/bench/check_cost.py --records RECORDS.jsonl --home HOME [--cache-dir DIR]

HOME is the home the eval answered from (`assistant eval qa --home HOME --records ...`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

import common

from assistant.answer.pipeline import Answerer, _GiveUpWatch
from assistant.config import Config, VerifierMode
from assistant.grounding.checker import SupportChecker
from assistant.grounding.verifier import shared_verifier
from assistant.index.home import Home
from assistant.llm.loader import load_chat_model

KINDS: tuple[VerifierMode, VerifierMode] = ("rules", "model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, required=True, help="`assistant eval qa` records")
    parser.add_argument("--home", type=Path, required=True, help="the home the eval answered from")
    parser.add_argument("--cache-dir", type=Path, default=None, help="converted model cache")
    parser.add_argument(
        "--out", type=Path, default=common.ROOT / "evals/bench/results/check_cost.json"
    )
    arguments = parser.parse_args()
    records = [json.loads(line) for line in arguments.records.open() if line.strip()]
    overrides = {"cache_dir": str(arguments.cache_dir)} if arguments.cache_dir else {}
    config = Config.load(home=arguments.home, **overrides)
    results: dict[str, Any] = common.result_header("check_cost")
    home = Home(config)
    answerer = Answerer(home, load_chat_model(config))  # its window decides the prompt passages
    started = time.perf_counter()
    verifier = shared_verifier()
    verifier.support([("A passage.", "A claim.")])  # loads the model and measures bfloat16
    results["verifier_load_s"] = time.perf_counter() - started
    results["verifier_bfloat16"] = verifier.bfloat16
    seconds: dict[str, list[float]] = {kind: [] for kind in KINDS}
    before: dict[str, list[float]] = {kind: [] for kind in KINDS}
    answered = [record for record in records if record["raw_answer"]]  # else no check ran
    for kind in KINDS:  # one untimed pass each: first calls (tokenizers, kernels) cost extra
        time_one(answerer, answered[0], kind)
    for number, record in enumerate(answered):
        for kind in KINDS if number % 2 == 0 else KINDS[::-1]:
            before_seconds, check_seconds = time_one(answerer, record, kind)
            before[kind].append(before_seconds)
            seconds[kind].append(check_seconds)
    home.close()
    results["answers"] = len(seconds["rules"])
    for kind in KINDS:
        results[kind] = summary_ms(seconds[kind])
    results["model_minus_rules"] = summary_ms(
        [model - rules for model, rules in zip(seconds["model"], seconds["rules"], strict=True)]
    )
    results["before_first_piece"] = {kind: summary_ms(before[kind]) for kind in KINDS}
    results["load_average_end"] = os.getloadavg()
    print_table(results)
    common.write_results(arguments.out, results)
    print(f"wrote {arguments.out}")


def time_one(answerer: Answerer, record: dict[str, Any], kind: VerifierMode) -> tuple[float, float]:
    """Seconds of one answer's work before its first piece, and of its checks (while streaming
    and after), with a fresh checker of this kind."""
    config = answerer.config
    answerer.checker = SupportChecker(
        answerer.home.embedder.embed,
        threshold=config.support_threshold,
        min_evidence_score=config.min_retrieval_score,
        verifier=kind,
    )
    search = answerer._retrieve(record["query"], [], None)
    passages = answerer.build_prompt(record["question"], search.passages, [], "").passages
    pieces = re.findall(r"\S+\s*", record["raw_answer"])
    started = time.perf_counter()
    answerer._abstention_before_generating(record["question"], search)
    before = time.perf_counter() - started
    started = time.perf_counter()
    watch = _GiveUpWatch(answerer.checker, passages, config.give_up_after)
    for number in range(len(pieces)):
        if watch.should_stop(pieces[number], pieces[: number + 1]):
            break
    answerer._check_generated(record["question"], passages, record["raw_answer"])
    return before, time.perf_counter() - started


def summary_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": 1000 * statistics.median(ordered),
        "mean_ms": 1000 * statistics.mean(ordered),
        "p95_ms": 1000 * ordered[round(0.95 * (len(ordered) - 1))],
    }


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{results['answers']} answers; verifier load {results['verifier_load_s']:.2f} s "
        f"(bfloat16 {results['verifier_bfloat16']})"
    )
    for name in (*KINDS, "model_minus_rules"):
        row = results[name]
        print(
            f"  {name:18} median {row['median_ms']:7.0f} ms  mean {row['mean_ms']:7.0f} ms  "
            f"p95 {row['p95_ms']:7.0f} ms"
        )
    for kind, row in results["before_first_piece"].items():
        print(
            f"  before the first piece, {kind:5}  median {row['median_ms']:5.0f} ms  "
            f"p95 {row['p95_ms']:5.0f} ms"
        )


if __name__ == "__main__":
    main()
