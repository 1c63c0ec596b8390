"""End to end: `assistant ask` latency on the sample corpus, and peak memory of `assistant chat`.

- ask latency: the sample corpus is ingested into a temporary home, the language model is loaded
  once, then each question of a fixed list goes through `Answerer.ask` (the pipeline behind
  `assistant ask` and chat): time to the passages, to the first streamed piece of the answer, and
  to the checked answer. Median and p95 over the questions, per repeat.
- chat peak memory: `assistant chat` runs as a subprocess reading questions from a pipe (so the
  full CLI, models and index are loaded exactly as a user runs it); its peak resident set size is
  read from the kernel (VmHWM, reported by the child as it exits). The target is under 1.5 GB.

    python evals/bench/end_to_end.py [--repeats 1] [--out evals/bench/results/end_to_end.json]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

from assistant.answer.pipeline import Answer, Answerer, Retrieved
from assistant.config import Config
from assistant.index.home import Home
from assistant.ingest.pipeline import ingest
from assistant.llm.loader import describe, load_chat_model

ROOT = common.ROOT
CORPUS = ROOT / "corpora" / "sample"
QUESTIONS = [
    "What does the KV cache store?",
    "What is perplexity?",
    "How does nucleus sampling choose the next token?",
    "What is reciprocal rank fusion?",
    "Who wrote the novel Frankenstein?",  # not in the corpus: an abstention
    "Why does greedy decoding repeat itself?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "evals/bench/results/end_to_end.json")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="converted model cache to reuse"
    )
    arguments = parser.parse_args()
    results: dict[str, Any] = {
        "benchmark": "end_to_end",
        "command": " ".join(["python", *sys.argv]),
        "machine": common.machine_info(),
        "date": time.strftime("%Y-%m-%d"),
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as scratch:
        cache = arguments.cache_dir or Path(scratch) / "models"
        config = Config.load(home=Path(scratch) / "home", cache_dir=str(cache))
        home = Home(config)
        for _ in ingest(home, [CORPUS]):
            pass
        started = time.perf_counter()
        model = load_chat_model(config)  # the default engine, as `assistant ask` loads it
        results["engine"] = f"{type(model).__name__}: {describe(config)}"
        answerer = Answerer(home, model)
        results["model_load_s"] = time.perf_counter() - started
        results["embedding_backend"] = home.embedder.backend
        results["ask"] = [ask_latencies(answerer) for _ in range(arguments.repeats)]
        home.close()
        results["chat"] = chat_peak_memory(config)
    results["load_average_end"] = os.getloadavg()
    print_table(results)
    common.write_results(arguments.out, results)
    print(f"wrote {arguments.out}")


def ask_latencies(answerer: Answerer) -> dict[str, Any]:
    rows = []
    for question in QUESTIONS:
        started = time.perf_counter()
        retrieved = first = None
        answer: Answer | None = None
        for event in answerer.ask(question):
            now = time.perf_counter() - started
            if isinstance(event, Retrieved):
                retrieved = now
            elif isinstance(event, str) and first is None and event.strip():
                first = now
            elif isinstance(event, Answer):
                answer = event
        total = time.perf_counter() - started
        assert answer is not None
        rows.append(
            {
                "question": question,
                "retrieval_s": retrieved,
                "first_piece_s": first if first is not None else total,
                "answer_s": total,
                "abstained": answer.abstained,
            }
        )
    summary = {}
    for key in ("retrieval_s", "first_piece_s", "answer_s"):
        values = sorted(float(row[key] or 0.0) for row in rows)
        summary[key] = {
            "median": statistics.median(values),
            "p95": values[min(len(values) - 1, round(0.95 * (len(values) - 1)))],
        }
    return {"summary": summary, "questions": rows}


# `assistant chat` in a child that reports its own peak resident set size when it exits. The
# kernel's VmHWM is per address space, so it starts afresh at exec; `ru_maxrss` of the child (or of
# RUSAGE_CHILDREN) would also count the pages it shared with this large process between fork and
# exec, which made an earlier version of this script report ~1.9 GB for a ~1.2 GB chat.
PEAK_REPORTING_CHAT = """
import atexit, re, sys
def report():
    status = open("/proc/self/status").read()
    sys.stderr.write("\\nPEAK_RSS_KIB=" + re.search(r"VmHWM:\\s+(\\d+)", status).group(1) + "\\n")
atexit.register(report)
sys.argv = ["assistant", "chat", "--session", "bench"]
from assistant.cli import app
app(prog_name="assistant")
"""


def chat_peak_memory(config: Config) -> dict[str, Any]:
    environment = {
        **os.environ,
        "ASSISTANT_HOME": str(config.home),
        "ASSISTANT_CACHE_DIR": str(config.models_dir),
    }
    script = "\n".join([*QUESTIONS[:3], "/exit"]) + "\n"
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, "-c", PEAK_REPORTING_CHAT],
        input=script,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"assistant chat failed:\n{finished.stderr[-2000:]}")
    peaks = re.findall(r"PEAK_RSS_KIB=(\d+)", finished.stderr)
    if not peaks:
        raise SystemExit("assistant chat did not report its peak memory")
    return {
        "questions": 3,
        "seconds": seconds,
        "peak_rss_mb": int(peaks[-1]) / 1024,
        "target_mb": 1536,
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"model load {results['model_load_s']:.2f} s; embedder {results['embedding_backend']}")
    for number, run in enumerate(results["ask"], start=1):
        passages, first, answer = (
            run["summary"][key] for key in ("retrieval_s", "first_piece_s", "answer_s")
        )
        print(
            f"ask, run {number} ({len(run['questions'])} questions): passages "
            f"{passages['median']:.2f} s, first piece {first['median']:.2f} s "
            f"(p95 {first['p95']:.2f}), answer {answer['median']:.2f} s (p95 {answer['p95']:.2f})"
        )
    chat = results["chat"]
    print(
        f"chat: peak RSS {chat['peak_rss_mb']:.0f} MB (target < {chat['target_mb']} MB), "
        f"{chat['questions']} questions in {chat['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
