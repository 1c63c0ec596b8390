"""`assistant serve` under load: requests per minute and time to first token for 1, 4 and 16
concurrent clients, with the bundled model over the sample corpus.

The sample corpus is ingested into a temporary home (or `--home` is used as it is), then the real
command, `assistant serve`, runs in a subprocess on a free loopback port, and each level of
concurrency sends `--requests` streamed questions from that many client threads at once, each
with the official `openai` client, as a chat UI would. Per request it records:

- time to first token: from sending the request to the first piece of the model's draft
  (`reasoning_content`), the queue's wait included: what a user waits before text appears;
- time to the checked answer: to the first `content` piece, sent once the answer is checked;
- the whole request.

Requests per minute are completed requests over the level's wall time. One model answers one
question at a time (the server's queue), so more clients raise the throughput only as far as
the work around the model overlaps, and mostly lengthen the wait: the numbers say how much.

    python evals/bench/serve.py [--clients 1 4 16] [--requests 16] [--max-tokens N]
                                [--out evals/bench/results/serve.json]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import common
import openai

ROOT = common.ROOT
CORPUS = ROOT / "corpora" / "sample"
QUESTIONS = [
    "What does the KV cache store?",
    "What is perplexity?",
    "How does nucleus sampling choose the next token?",
    "What is reciprocal rank fusion?",
    "Why does greedy decoding repeat itself?",
    "What does quantization do to a model?",
    "How does byte-pair encoding build its vocabulary?",
    "What is continuous batching?",
]
STARTUP_SECONDS = 900  # the first load on a CPU converts and measures the model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--requests", type=int, default=16, help="requests per level (at least one per client)"
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="longest answer, in tokens")
    parser.add_argument("--home", type=Path, default=None, help="an ingested home to serve")
    parser.add_argument("--cache-dir", type=Path, default=None, help="converted models to reuse")
    parser.add_argument("--out", type=Path, default=ROOT / "evals/bench/results/serve.json")
    arguments = parser.parse_args()
    results: dict[str, Any] = {
        "benchmark": "serve",
        "command": " ".join(["python", *sys.argv]),
        "machine": common.machine_info(),
        "date": time.strftime("%Y-%m-%d"),
        "questions": QUESTIONS,
        "max_tokens": arguments.max_tokens,
    }
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        home = arguments.home or _ingested_home(Path(scratch) / "home")
        cache = arguments.cache_dir or Path(scratch) / "models"
        environment = {
            **os.environ,
            "ASSISTANT_HOME": str(home),
            "ASSISTANT_CACHE_DIR": str(cache),
        }
        if arguments.max_tokens is not None:
            environment["ASSISTANT_MAX_NEW_TOKENS"] = str(arguments.max_tokens)
        log = Path(scratch) / "serve.log"
        with _served(environment, max(arguments.clients), log) as (url, startup_s):
            results["startup_s"] = startup_s
            _one_request(url, QUESTIONS[0])  # warm: the first answer pays for lazy loading
            results["levels"] = [
                _level(url, clients, max(arguments.requests, clients))
                for clients in arguments.clients
            ]
    results["load_average_end"] = os.getloadavg()
    _print_table(results)
    common.write_results(arguments.out, results)
    print(f"wrote {arguments.out}")


def _ingested_home(home: Path) -> Path:
    from assistant.config import Config
    from assistant.index.home import Home
    from assistant.ingest.pipeline import ingest

    assistant_home = Home(Config.load(home=home))
    for _ in ingest(assistant_home, [CORPUS]):
        pass
    assistant_home.close()
    return home


@contextmanager
def _served(environment: dict[str, str], clients: int, log: Path) -> Iterator[tuple[str, float]]:
    """`assistant serve` in a subprocess on a free port until the block ends: its URL and the
    seconds it took to answer its first request (`/v1/models`)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    command = [sys.executable, "-m", "assistant", "serve", "--port", str(port)]
    command += ["--queue-limit", str(clients)]  # every client's request may wait its turn
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=environment, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=5)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"assistant serve exited:\n{log.read_text()[-3000:]}")
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                if time.perf_counter() - started > STARTUP_SECONDS:
                    raise SystemExit("assistant serve did not start in time") from None
                time.sleep(0.5)
        yield url, time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _one_request(url: str, question: str) -> dict[str, Any]:
    """One streamed question: seconds to the first draft piece, to the checked answer, to the
    end; `error` instead when the server refused or failed."""
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=1800)
    started = time.perf_counter()
    first_token = checked = None
    abstained = None
    try:
        stream = client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": question}], stream=True
        )
        for chunk in stream:
            now = time.perf_counter() - started
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            piece = (delta.model_extra or {}).get("reasoning_content") or delta.content
            if piece and first_token is None:
                first_token = now
            if delta.content and checked is None:
                checked = now
            if chunk.choices[0].finish_reason is not None:
                abstained = (chunk.model_extra or {}).get("grounding", {}).get("abstained")
    except openai.APIError as error:
        return {"question": question, "error": str(error)}
    total = time.perf_counter() - started
    return {
        "question": question,
        "first_token_s": first_token if first_token is not None else total,
        "checked_answer_s": checked if checked is not None else total,
        "total_s": total,
        "abstained": abstained,
    }


def _level(url: str, clients: int, requests: int) -> dict[str, Any]:
    """`requests` questions sent by `clients` threads, each sending its next one as soon as its
    last is answered."""
    lock = threading.Lock()
    next_question = 0

    def client_loop() -> list[dict[str, Any]]:
        nonlocal next_question
        rows = []
        while True:
            with lock:
                if next_question >= requests:
                    return rows
                question = QUESTIONS[next_question % len(QUESTIONS)]
                next_question += 1
            rows.append(_one_request(url, question))

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        rows = [row for rows in pool.map(lambda _: client_loop(), range(clients)) for row in rows]
    wall = time.perf_counter() - started
    done = [row for row in rows if "error" not in row]
    return {
        "clients": clients,
        "requests": len(rows),
        "errors": len(rows) - len(done),
        "wall_s": wall,
        "requests_per_minute": len(done) / wall * 60 if wall > 0 else 0.0,
        "first_token_s": _percentiles([row["first_token_s"] for row in done]),
        "checked_answer_s": _percentiles([row["checked_answer_s"] for row in done]),
        "total_s": _percentiles([row["total_s"] for row in done]),
        "rows": rows,
    }


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p95": p95}


def _print_table(results: dict[str, Any]) -> None:
    machine = results["machine"]
    print(f"{machine['cpu']} ({machine['cores']} cores, {machine['cpu_class']})")
    print(f"assistant serve ready in {results['startup_s']:.1f} s")
    print(
        f"{'clients':>7} {'requests':>8} {'errors':>6} {'req/min':>8} "
        f"{'TTFT p50':>9} {'TTFT p95':>9} {'checked p50':>12} {'checked p95':>12}"
    )
    for level in results["levels"]:
        first, checked = level["first_token_s"], level["checked_answer_s"]
        print(
            f"{level['clients']:>7} {level['requests']:>8} {level['errors']:>6} "
            f"{level['requests_per_minute']:>8.1f} {_seconds(first['p50']):>9} "
            f"{_seconds(first['p95']):>9} {_seconds(checked['p50']):>12} "
            f"{_seconds(checked['p95']):>12}"
        )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    main()
