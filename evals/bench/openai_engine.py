"""The OpenAI-compatible engine's overhead: the same llama.cpp model, in-process vs over HTTP.

`assistant --model openai:...` reaches a model through a server's OpenAI-compatible API (server-
sent events, the `openai` client). What that path costs is measured here on one llama.cpp
server: the llama.cpp engine (`LlamaCppModel`, in-process calls) starts xllamacpp's server on
loopback with the bundled GGUF, and the OpenAI engine (`OpenAIModel`) is pointed at that very
server's `/v1` (`LlamaCppModel.openai_endpoint`). Both decode greedily, so they produce the same
tokens (tests/e2e/test_llm_openai_engine.py checks it), and the runs alternate between the two,
prompt by prompt, so a change in the machine's load hits both alike.

Per engine: median decode speed (tokens/s after the first token), median time to the first
piece, over every prompt and repeat; the overhead is 1 - remote/in-process decode speed
(target: under 5%).

    python evals/bench/openai_engine.py [--repeats 5] [--max-tokens 128]
                                        [--out evals/bench/results/openai_engine.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import common

from assistant.config import Config
from assistant.llm.base import ChatModel
from assistant.llm.llamacpp import LlamaCppModel
from assistant.llm.openai_engine import OpenAIModel

SAMPLE = common.ROOT / "corpora" / "sample"


def prompts() -> list[list[dict[str, str]]]:
    """A short question, and questions over one and over three sample documents (longer
    prompts: the prompt's pass weighs more in the time to the first piece)."""
    documents = [
        (SAMPLE / name).read_text(encoding="utf-8")[:2500]  # three fit the estimate's budget
        for name in ("kv-cache.md", "serving-and-batching.md", "streaming-output.md")
    ]
    system = {"role": "system", "content": "Answer from the passages, in detail."}
    return [
        [{"role": "user", "content": "Explain how a transformer language model generates text."}],
        [system, {"role": "user", "content": f"{documents[0]}\n\nWhat does the KV cache store?"}],
        [
            system,
            {
                "role": "user",
                "content": "\n\n".join(documents) + "\n\nCompare these three techniques.",
            },
        ],
    ]


def run_once(model: ChatModel, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    started = time.perf_counter()
    text = "".join(model.stream(messages, max_new_tokens=max_tokens))
    wall = time.perf_counter() - started
    stats = model.last_stats
    assert stats is not None
    return {
        "prompt_tokens": stats.prompt_tokens,
        "new_tokens": stats.new_tokens,
        "ttft_s": stats.ttft_s,
        "decode_tok_s": stats.tokens_per_s,
        "wall_s": wall,
        "text": text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("evals/bench/results/openai_engine.json"))
    arguments = parser.parse_args()

    config = Config.load()
    local = LlamaCppModel.load(config)
    base_url, key = local.openai_endpoint()
    remote = OpenAIModel.load(
        config.replace(model="openai:smollm2", openai_base_url=base_url), api_key=key
    )
    engines: dict[str, ChatModel] = {"in-process": local, "openai": remote}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in engines}
    same_text = True
    try:
        for messages in prompts():  # a warm-up of each engine on each prompt, not counted
            for model in engines.values():
                run_once(model, messages, 8)
        for repeat in range(arguments.repeats):
            for number, messages in enumerate(prompts()):
                order = list(engines) if (repeat + number) % 2 == 0 else list(engines)[::-1]
                texts = []
                for name in order:
                    result = run_once(engines[name], messages, arguments.max_tokens)
                    texts.append(result.pop("text"))
                    runs[name].append(result | {"prompt": number, "repeat": repeat})
                same_text = same_text and texts[0] == texts[1]
    finally:
        remote.close()
        local.close()

    summary: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        summary[name] = {
            "decode_tok_s_median": statistics.median(r["decode_tok_s"] for r in results),
            "ttft_s_median": statistics.median(r["ttft_s"] for r in results),
            "wall_s_total": sum(r["wall_s"] for r in results),
        }
    local_speed = summary["in-process"]["decode_tok_s_median"]
    remote_speed = summary["openai"]["decode_tok_s_median"]
    overhead = 1.0 - remote_speed / local_speed
    ttft_ratio = summary["openai"]["ttft_s_median"] / summary["in-process"]["ttft_s_median"]
    print(f"{'engine':<12} {'decode tok/s':>13} {'first piece s':>14} {'total s':>9}")
    for name, row in summary.items():
        print(
            f"{name:<12} {row['decode_tok_s_median']:>13.1f} {row['ttft_s_median']:>14.3f}"
            f" {row['wall_s_total']:>9.1f}"
        )
    print(
        f"decode overhead of the OpenAI path: {overhead:+.1%} (target < 5%); first piece "
        f"{ttft_ratio:.2f}x; same greedy text: {same_text}"
    )
    common.write_results(
        arguments.out,
        {
            "benchmark": "openai_engine",
            "machine": common.machine_info(("torch", "transformers", "openai", "xllamacpp")),
            "repeats": arguments.repeats,
            "max_tokens": arguments.max_tokens,
            "summary": summary,
            "decode_overhead": overhead,
            "ttft_ratio": ttft_ratio,
            "same_text": same_text,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
