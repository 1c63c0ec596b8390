"""End to end: `assistant ask` latency on the sample corpus, and peak memory of `assistant chat`.

- ask latency: the sample corpus is ingested into a temporary home, the language model is loaded
  once, then each question of a fixed list goes through `Answerer.ask` (the pipeline behind
  `assistant ask` and chat): time to the passages, to the first streamed piece of the answer, and
  to the checked answer. Median and p95 over the questions, per repeat.
- chat peak memory: `assistant chat` runs as a subprocess reading questions from a pipe (so the
  full CLI, models and index are loaded exactly as a user runs it); its peak resident set size is
  read from the kernel (VmHWM, reported by the child as it exits). The target is under 1.5 GB.
- cold start: what a user waits for from pressing Enter, each command a new process over the same
  home: `assistant search`, `assistant docs`, and `assistant ask` until its first streamed piece
  (read from a pseudo-terminal, where it streams) and until it exits. One untimed run of each
  first (warm file cache, export and kernel caches built), then the best of `--cold-repeats`;
  `python -c "pass"` and `python -c "import torch"` are timed in the same run as floors, so a
  busy machine's numbers can still be read as ratios, and each process's CPU seconds are kept
  too (waiting for a core inflates the wall time, not those). Targets: search 1.5 s, first
  piece 2.5 s.

    python evals/bench/end_to_end.py [--repeats 1] [--out evals/bench/results/end_to_end.json]
    python evals/bench/end_to_end.py --cold-start-only [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import codecs
import fcntl
import os
import pty
import re
import resource
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
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
COLD_QUERY = "kv cache"  # what `assistant search` looks for in the cold-start runs
COLD_TARGETS = {"search": 1.5, "ask_first_piece": 2.5}  # seconds (issue 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="(default: results/...json)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="converted model cache to reuse"
    )
    parser.add_argument("--cold-repeats", type=int, default=3, help="timed runs per command")
    parser.add_argument(
        "--cold-start-only",
        action="store_true",
        help="only the cold start (written to results/cold_start.json by default)",
    )
    arguments = parser.parse_args()
    name = "cold_start" if arguments.cold_start_only else "end_to_end"
    out = arguments.out or ROOT / f"evals/bench/results/{name}.json"
    results: dict[str, Any] = common.result_header("end_to_end")
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as scratch:
        cache = arguments.cache_dir or Path(scratch) / "models"
        config = Config.load(home=Path(scratch) / "home", cache_dir=str(cache))
        home = Home(config)
        for _ in ingest(home, [CORPUS]):
            pass
        if arguments.cold_start_only:
            home.close()
            results["cold_start"] = cold_start(config, arguments.cold_repeats)
            results["load_average_end"] = os.getloadavg()
            print_cold_start(results["cold_start"])
            common.write_results(out, results)
            print(f"wrote {out}")
            return
        started = time.perf_counter()
        model = load_chat_model(config)  # the default engine, as `assistant ask` loads it
        results["engine"] = f"{type(model).__name__}: {describe(config)}"
        answerer = Answerer(home, model)
        results["model_load_s"] = time.perf_counter() - started
        results["embedding_backend"] = home.embedder.backend
        results["verifier"] = config.verifier  # ASSISTANT_VERIFIER: model or rules
        results["ask"] = [ask_latencies(answerer) for _ in range(arguments.repeats)]
        home.close()
        results["chat"] = chat_peak_memory(config)
        results["cold_start"] = cold_start(config, arguments.cold_repeats)
    results["load_average_end"] = os.getloadavg()
    print_table(results)
    print_cold_start(results["cold_start"])
    common.write_results(out, results)
    print(f"wrote {out}")


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
    print(
        f"model load {results['model_load_s']:.2f} s; embedder {results['embedding_backend']}; "
        f"verifier {results['verifier']}"
    )
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


def cold_start(config: Config, repeats: int) -> dict[str, Any]:
    """Whole-process wall times, best of `repeats` after one untimed run (see the docstring)."""
    environment = {
        **os.environ,
        "ASSISTANT_HOME": str(config.home),
        "ASSISTANT_CACHE_DIR": str(config.models_dir),
    }
    question = QUESTIONS[0]
    runs: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}

    def measure(name: str, argv: list[str]) -> None:
        _run(argv, environment)  # untimed: file cache, embedder export, kernels, calibration
        timed = [_run(argv, environment) for _ in range(repeats)]
        runs[name] = [seconds for seconds, _ in timed]
        cpu[name] = [used for _, used in timed]

    load_start = os.getloadavg()
    measure("python", [sys.executable, "-c", "pass"])
    measure("import_torch", [sys.executable, "-c", "import torch"])
    measure("docs", [*ASSISTANT, "docs"])
    measure("search", [*ASSISTANT, "search", COLD_QUERY])
    _first_piece([*ASSISTANT, "ask", question], environment)  # untimed
    asked = [_first_piece([*ASSISTANT, "ask", question], environment) for _ in range(repeats)]
    runs["ask_first_piece"] = [first for first, _, _ in asked]
    runs["ask_exit"] = [total for _, total, _ in asked]
    cpu["ask_exit"] = [used for _, _, used in asked]
    best = {name: min(times) for name, times in runs.items()}
    least_cpu = {name: min(times) for name, times in cpu.items()}
    return {
        "repeats": repeats,
        "query": COLD_QUERY,
        "question": question,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "best_s": best,
        "runs_s": runs,
        "over_python": {name: seconds / best["python"] for name, seconds in best.items()},
        "over_import_torch": {
            name: seconds / best["import_torch"] for name, seconds in best.items()
        },
        "cpu_s": least_cpu,  # user + system seconds of the process (and its threads), least
        "cpu_runs_s": cpu,
        "cpu_over_import_torch": {
            name: seconds / least_cpu["import_torch"] for name, seconds in least_cpu.items()
        },
        "targets_s": COLD_TARGETS,
    }


# `assistant` as the user types it: the console script beside this Python, else `-m assistant`.
_SCRIPT = Path(sys.executable).with_name("assistant")
ASSISTANT = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "assistant"]


def _run(argv: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    used = _children_cpu()
    started = time.perf_counter()
    finished = subprocess.run(
        argv, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{finished.stderr.decode()[-2000:]}")
    return seconds, _children_cpu() - used


def _children_cpu() -> float:
    """CPU seconds of the children that have exited (one at a time here, so a difference is
    one child's)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Cursor movement and erasing (rich's live view redraws with them) and styles.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|[\r\n]")
# The live view's status lines, numbers written as N.
_STATUSES = ("searching your documents…", "found N passages; thinking…")


def _first_piece(argv: list[str], environment: dict[str, str]) -> tuple[float, float, float]:
    """Seconds until the first piece of the answer is drawn and until the process exits, and
    the CPU seconds it used.

    `ask` streams only into a terminal, so it runs on a pseudo-terminal; its live view draws
    status lines ("searching…", "thinking…") and then the streamed text (or, when nothing
    streams, the checked answer). The first text that is none of those is the first piece."""
    control, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
    used = _children_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        env={**environment, "TERM": "xterm-256color", "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    screen, first = "", None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    while True:
        ready, _, _ = select.select([control], [], [], 1.0)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            chunk = os.read(control, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        screen += decoder.decode(chunk)
        if first is None and _shows_answer(screen):
            first = time.perf_counter() - started
    process.wait()
    total = time.perf_counter() - started
    os.close(control)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{screen[-2000:]}")
    return (first if first is not None else total), total, _children_cpu() - used


def _shows_answer(screen: str) -> bool:
    """Whether the live view has drawn anything after its last status line but the spinner
    and statuses (a line still being written that could become a status does not count)."""
    after = screen[screen.rfind("thinking…") + len("thinking…") :] if "thinking…" in screen else ""
    if not after:
        return False
    for segment in _CONTROL.split(after):
        text = re.sub(r"\d+", "N", segment.strip()).replace("N passage;", "N passages;")
        if text and not any(status.startswith(text) for status in _STATUSES):
            return True
    return False


def print_cold_start(cold: dict[str, Any]) -> None:
    load = cold["load_average"]
    print(
        f"cold start, best of {cold['repeats']} (load average {load['start'][0]:.1f} -> "
        f"{load['end'][0]:.1f}):"
    )
    labels = {
        "python": 'python -c "pass"',
        "import_torch": 'python -c "import torch"',
        "docs": "assistant docs",
        "search": f'assistant search "{cold["query"]}"',
        "ask_first_piece": "assistant ask: first piece",
        "ask_exit": "assistant ask: exit",
    }
    print(
        f"  {'':30} {'seconds':>8} {'x pass':>8} {'x torch':>8} {'CPU s':>7} {'x torch':>8} "
        f"{'target':>7}"
    )
    for name, label in labels.items():
        target = cold["targets_s"].get(name)
        used = cold["cpu_s"].get(name)
        cpu = f"{'':16}"  # no CPU seconds for the first piece: the process still runs
        if used is not None:
            cpu = f"{used:7.2f} {cold['cpu_over_import_torch'][name]:8.2f}"
        print(
            f"  {label:30} {cold['best_s'][name]:8.2f} {cold['over_python'][name]:8.1f} "
            f"{cold['over_import_torch'][name]:8.2f} {cpu} {f'{target:.1f}' if target else '':>7}"
        )


if __name__ == "__main__":
    main()
