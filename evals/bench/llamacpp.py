"""Benchmark our generation engine side by side with llama.cpp on the same GGUF file.

Both engines get the same chat-templated prompt (the token ids our tokenizer builds, for the short
and long RAG prompts of `generation.py`), the same thread count (the cores this process may use),
greedy decoding with the same repetition penalty, and the same number of new tokens. Reported per
engine: load time, time to first token, decode tokens/s; then ours / llama.cpp ratios.

llama.cpp runs through the prebuilt `xllamacpp` wheel in a virtual environment of its own (created
and filled on first use), in a worker subprocess (`llamacpp_worker.py`), so the project's
environment never gets it. The two engines take turns run by run, never at the same time, so a
change in the machine's load hits both alike; each keeps its best run, as `generation.py` does.

The results go into the `llamacpp` section and the `ratios` of `generation.json`; the other
sections, written by `generation.py`, are kept.

    python evals/bench/llamacpp.py [--repeats 2] [--llamacpp-venv PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# generation.py sets OMP_WAIT_POLICY=PASSIVE before torch loads; the worker inherits it, which
# matters even more there: with spinning OpenMP workers on this busy 2-core machine llama.cpp
# decoded at 0.3 tokens/s instead of ~65.
import common
from generation import ROOT, manual_run, rag_prompt
from transformers import AutoTokenizer

from assistant.config import Config
from assistant.llm.torch_engine import LanguageModel
from assistant.llm.weights import dense_cache_dir
from assistant.models import resolve_language_model

WORKER = Path(__file__).with_name("llamacpp_worker.py")
DEFAULT_VENV = Path.home() / ".cache" / "assistant-bench" / "llamacpp-venv"
DEFAULT_HOME = Path.home() / ".cache" / "assistant-bench" / "home"
LOG = Path(tempfile.gettempdir()) / "assistant-bench-llamacpp.log"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "evals/bench/results/generation.json")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens decoded per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per engine and prompt")
    parser.add_argument("--llamacpp-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--xllamacpp", default="xllamacpp", help="pip requirement to install")
    parser.add_argument(
        "--home", type=Path, default=DEFAULT_HOME, help="data folder holding our dense cache"
    )
    arguments = parser.parse_args()

    python = ensure_venv(arguments.llamacpp_venv, arguments.xllamacpp)
    config = Config.load(environ={}, home=arguments.home, device="cpu")
    source = resolve_language_model(config.model)
    if source.gguf_file is None:
        sys.exit(f"the configured model {config.model!r} is not a GGUF file")
    gguf = Path(source.location) / source.gguf_file

    section: dict[str, Any] = {"machine": common.machine_info()}
    section["settings"] = {
        "new_tokens": arguments.new_tokens,
        "repeats": arguments.repeats,
        "gguf": str(gguf),
        "llamacpp_venv": str(arguments.llamacpp_venv),
        "repetition_penalty": config.repetition_penalty,
    }
    load: dict[str, float] = {}
    if not dense_cache_dir(source, config.models_dir).exists():
        started = time.perf_counter()
        LanguageModel.load(config)  # de-quantizes the GGUF file once
        load["ours_first_gguf_s"] = time.perf_counter() - started
    started = time.perf_counter()
    model = LanguageModel.load(config)  # 4-bit weights (weights=auto on a Q4 file)
    load["ours_cached_dense_s"] = time.perf_counter() - started
    ours_models = {model.weights: model}
    dense = LanguageModel.load(config.replace(weights="dense"))
    ours_models[dense.weights] = dense
    section["settings"]["ours_weights"] = list(ours_models)
    prompts = {"short": rag_prompt(model, 140), "long": rag_prompt(model, 1500)}
    tokenizer = AutoTokenizer.from_pretrained(dense_cache_dir(source, config.models_dir))
    prompt_ids = {name: chat_ids(tokenizer, messages) for name, messages in prompts.items()}
    for name, messages in prompts.items():
        if len(prompt_ids[name]) != model.count_message_tokens(messages):
            sys.exit(f"the {name} prompt does not tokenize as our engine tokenizes it")

    threads = section["machine"]["torch_threads"]
    setup = {
        "gguf": str(gguf),
        "threads": threads,
        "context": model.context_length,
        # Greedy, with our repetition penalty over the whole context (prompt included), as the
        # transformers processor applies it; min_p off (llama.cpp defaults it to 0.05).
        "sampling": {
            "temperature": 0.0,
            "repeat_penalty": config.repetition_penalty,
            "repeat_last_n": model.context_length,
            "min_p": 0.0,
            "seed": config.seed,
        },
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    with start_worker(python, setup) as worker:
        hello = read_answer(worker)
        load["llamacpp_s"] = hello.pop("load_s")
        section["machine"].update(llamacpp=hello)
        for name, messages in prompts.items():
            for _ in range(max(1, arguments.repeats)):
                for weights, ours_model in ours_models.items():
                    ours = manual_run(ours_model, messages, arguments)
                    runs.setdefault(f"ours/{_label(weights)}/{name}", []).append(ours)
                job = {"prompt_ids": prompt_ids[name], "new_tokens": arguments.new_tokens}
                runs.setdefault(f"llamacpp/{name}", []).append(ask(worker, job))
    section["load"] = load
    section["prompt_tokens"] = {name: len(ids) for name, ids in prompt_ids.items()}
    section["runs"] = {name: best(all_runs) for name, all_runs in runs.items()}
    section["machine"]["load_average_end"] = os.getloadavg()

    results = json.loads(arguments.out.read_text()) if arguments.out.exists() else {}
    results["llamacpp"] = section
    kept = {k: v for k, v in results.get("ratios", {}).items() if not k.startswith("llamacpp/")}
    results["ratios"] = {**kept, **ratios(section)}
    print_report(section, results["ratios"])
    common.write_results(arguments.out, results)
    print(f"\nwrote {arguments.out}")


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The prompt's token ids, built as assistant.llm.torch_engine builds them."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def ensure_venv(venv: Path, requirement: str) -> Path:
    """The venv's python, with xllamacpp importable: created and installed when missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import xllamacpp"], capture_output=True)
    if probe.returncode != 0:
        print(f"installing {requirement} into {venv}", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", requirement], check=True)
    return python


@contextmanager
def start_worker(python: Path, setup: dict[str, Any]) -> Iterator[subprocess.Popen[str]]:
    """The worker subprocess; its stderr (llama.cpp's log) goes to LOG, shown on failure."""
    with LOG.open("wb") as log:
        worker = subprocess.Popen(
            [str(python), str(WORKER), json.dumps(setup)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            yield worker
        finally:
            if worker.stdin:
                worker.stdin.close()  # end of input: the worker frees the model and exits
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def ask(worker: subprocess.Popen[str], job: dict[str, Any]) -> dict[str, Any]:
    """One run in the worker: send the job line, wait for its answer line."""
    if worker.stdin is None:
        raise RuntimeError("the worker has no input pipe")
    worker.stdin.write(json.dumps(job) + "\n")
    worker.stdin.flush()
    return read_answer(worker)


def read_answer(worker: subprocess.Popen[str]) -> dict[str, Any]:
    line = worker.stdout.readline() if worker.stdout else ""
    if not line:
        tail = LOG.read_text(errors="replace")[-3000:] if LOG.exists() else ""
        sys.exit(f"the llama.cpp worker stopped:\n{tail}")
    answer: dict[str, Any] = json.loads(line)
    if "error" in answer:
        sys.exit(f"llama.cpp refused the request: {answer['error']}")
    return answer


def _label(weights: str) -> str:
    return "float32" if weights == "dense" else weights


def best(all_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """As generation.best_of: the run with the best decode speed, the lowest TTFT, all runs."""
    chosen = dict(max(all_runs, key=lambda r: r["tokens_per_s"]))
    chosen["ttft_s"] = min(r["ttft_s"] for r in all_runs)
    chosen["all"] = [{k: v for k, v in r.items() if k != "text"} for r in all_runs]
    return chosen


def ratios(section: dict[str, Any]) -> dict[str, float]:
    runs, out = section["runs"], {}
    out["llamacpp/ours_cached_load_over_llamacpp_load"] = (
        section["load"]["ours_cached_dense_s"] / section["load"]["llamacpp_s"]
    )
    for prompt in ("short", "long"):
        theirs = runs[f"llamacpp/{prompt}"]
        for weights in section["settings"]["ours_weights"]:
            ours = runs[f"ours/{_label(weights)}/{prompt}"]
            key = f"llamacpp/{prompt}/{_label(weights)}"
            out[f"{key}/ours_over_llamacpp_tokens_per_s"] = (
                ours["tokens_per_s"] / theirs["tokens_per_s"]
            )
            out[f"{key}/ours_over_llamacpp_ttft"] = ours["ttft_s"] / theirs["ttft_s"]
            out[f"{key}/same_text"] = float(ours["text"] == theirs["text"])
    return out


def print_report(section: dict[str, Any], all_ratios: dict[str, float]) -> None:
    machine = section["machine"]
    print(
        f"{machine['cpu']} | {machine['cores']} cores | threads {machine['torch_threads']} | "
        f"OMP_WAIT_POLICY={machine['omp_wait_policy']} | torch {machine['torch']} | "
        f"xllamacpp {machine['llamacpp']['xllamacpp']} | load average "
        f"{machine['load_average_start'][0]:.1f} -> {machine['load_average_end'][0]:.1f}"
    )
    for name, seconds in section["load"].items():
        print(f"load {name:<20} {seconds:8.2f} s")
    print(f"prompt tokens: {section['prompt_tokens']}")
    print(f"\n{'prompt':<7} {'engine':<13} {'ttft s':>8} {'tok/s':>8} {'new':>5}")
    for prompt in ("short", "long"):
        rows = [
            (f"ours {_label(w)}", f"ours/{_label(w)}/{prompt}")
            for w in section["settings"]["ours_weights"]
        ]
        for engine, key in [*rows, ("llama.cpp", f"llamacpp/{prompt}")]:
            run = section["runs"][key]
            print(
                f"{prompt:<7} {engine:<13} {run['ttft_s']:8.3f} {run['tokens_per_s']:8.2f} "
                f"{run['new_tokens']:5d}"
            )
    print()
    for name, value in all_ratios.items():
        if name.startswith("llamacpp/"):
            print(f"{name:<50} {value:6.2f}")


if __name__ == "__main__":
    main()
