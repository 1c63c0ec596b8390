"""Benchmark the local language model: load time, time to first token and decode speed.

Measures, on the configured model (the bundled SmolLM2-135M GGUF by default):

- load time: the first load (GGUF de-quantized, dense copy written) against a cached dense load;
- time to first token and decode tokens/s for a short (~140-token) and a long (~1,500-token)
  RAG-style prompt built from the sample corpus, with float32 weights (the plain path), the plan
  this CPU measured fastest (`assistant/llm/kernel_plan.py`), the same plan on transformers'
  Llama code instead of ours (`assistant/llm/llama.py`), each path that plan chooses between
  forced (`FORCED`: 8-bit, 4-bit or float32 prompt products, torch's int4 kernel or ours for the
  steps, each step as torch operations or in one C call (`step.py`), one or two step threads,
  the C attention kernel or torch's), bfloat16 weights, and
  whether each gives float32's greedy answer; a forced path the calibration found several times
  slower than float32 is run on the short prompt only (it takes minutes on the long one);
- the long prompt's pass alone, the attention kernel and torch's attention taking turns;
- decode steps after the long prompt with transformers' `DynamicCache` against the project's
  cache that grows in place (`assistant/llm/kv_cache.py`), taking turns;
- the manual decode loop of `assistant.llm.torch_engine` against `model.generate` with a
  `TextIteratorStreamer` on a background thread (the usual transformers streaming recipe).

Each variant runs `--repeats` times and the best run is reported (the machine is shared, so the
best run is the least disturbed one); every run is kept in the JSON.

    python evals/bench/generation.py [--out evals/bench/results/generation.json]

The side-by-side with llama.cpp is `llamacpp.py`; its section of the JSON is kept here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# As assistant.llm.torch_engine does, but before torch loads; run with OMP_WAIT_POLICY=ACTIVE to
# compare.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import common
import torch
from torch.nn import functional
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, TextIteratorStreamer

from assistant.config import Config
from assistant.llm.attention import PromptAttention
from assistant.llm.kv_cache import growing_cache
from assistant.llm.torch_engine import LanguageModel, cache_argument
from assistant.llm.weights import dense_cache_dir
from assistant.models import resolve_language_model

ROOT = common.ROOT
CORPUS = ROOT / "corpora" / "sample"
SYSTEM = (
    "You answer questions using only the numbered passages the user gives you. Cite every claim "
    "with the passage number in brackets, like [1]. If the passages do not contain the answer, "
    "say that you do not know."
)
QUESTION = "How does the KV cache speed up generation, and what limits its size?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "evals/bench/results/generation.json")
    parser.add_argument("--new-tokens", type=int, default=48, help="tokens decoded per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant; best kept")
    parser.add_argument(
        "--home",
        type=Path,
        help="data folder holding the dense cache (default: a new temporary one, so the first, "
        "de-quantizing load is measured too)",
    )
    arguments = parser.parse_args()

    results: dict[str, Any] = {"machine": common.machine_info(), "settings": vars(arguments).copy()}
    results["settings"].update(out=str(arguments.out), home=str(arguments.home or ""))

    with tempfile.TemporaryDirectory(prefix="bench-generation-") as temporary:
        config = Config.load(environ={}, home=arguments.home or Path(temporary), device="cpu")
        results["load"] = measure_loads(config)
        model = LanguageModel.load(config.replace(weights="dense"))
        prompts = {
            "short": rag_prompt(model, 140),
            "long": rag_prompt(model, 1500),
        }
        results["prompt_tokens"] = {k: model.count_message_tokens(v) for k, v in prompts.items()}
        folder = dense_cache_dir(resolve_language_model(config.model), config.models_dir)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        variants: dict[str, LanguageModel] = {"float32": model}
        measured = LanguageModel.load(config)  # what this CPU measured fastest (kernel_plan)
        variants["measured"] = measured
        results["plan"] = {name: c.as_dict() for name, c in measured.plan.choices.items()}
        for name, overrides in FORCED.items():
            variants[name] = LanguageModel.load(config.replace(**overrides))
        results["prompt_attention"] = measured.prompt_attention
        bfloat16: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
        bfloat16.eval()
        variants["bfloat16"] = LanguageModel(config, bfloat16, tokenizer, torch.device("cpu"))

        hf_model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        hf_model.eval()
        runs: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for prompt_name, messages in prompts.items():
            for name, variant in variants.items():
                cliff = _cliff(variant, measured)
                if cliff and prompt_name == "long":
                    skipped[f"manual/{name}/{prompt_name}"] = cliff
                    continue
                runs[f"manual/{name}/{prompt_name}"] = best_of(
                    arguments.repeats, lambda v=variant, m=messages: manual_run(v, m, arguments)
                )
            runs[f"generate/float32/{prompt_name}"] = best_of(
                arguments.repeats,
                lambda h=hf_model, m=messages: generate_run(h, tokenizer, m, config, arguments),
            )
        results["runs"] = runs
        results["skipped"] = skipped
        results["prompt_pass"] = prompt_pass_ab(
            variants["kernel-attention"],
            variants["torch-attention"],
            prompts["long"],
            arguments.repeats,
        )
        results["cache"] = cache_ab(  # on transformers' code, whose cache this compares
            variants["measured/transformers-code"],
            prompts["long"],
            arguments.new_tokens,
            arguments.repeats,
        )
        results["ratios"] = ratios(results)
    results["machine"]["load_average_end"] = os.getloadavg()

    print_report(results)
    previous = json.loads(arguments.out.read_text()) if arguments.out.exists() else {}
    if "llamacpp" in previous:  # written by llamacpp.py, kept until that script runs again
        results["llamacpp"] = previous["llamacpp"]
        results["ratios"].update(
            {k: v for k, v in previous.get("ratios", {}).items() if k.startswith("llamacpp/")}
        )
    common.write_results(arguments.out, results)
    print(f"\nwrote {arguments.out}")


# Each path `kernel_plan` chooses between, forced (4-bit weights throughout).
FORCED: dict[str, dict[str, Any]] = {
    "int4/prompt-int8": {"weights": "int4", "step_products": "int4", "prompt_products": "int8"},
    "int4/prompt-int4": {"weights": "int4", "step_products": "int4", "prompt_products": "int4"},
    "int4/prompt-float32": {
        "weights": "int4",
        "step_products": "int4",
        "prompt_products": "float32",
    },
    "int4-native/prompt-float32": {
        "weights": "int4",
        "step_products": "int4_native",
        "prompt_products": "float32",
    },
    "int4-native-q8/prompt-float32": {
        "weights": "int4",
        "step_products": "int4_native_q8",
        "prompt_products": "float32",
    },
    "int4-native/prompt-int4-native": {
        "weights": "int4",
        "step_products": "int4_native",
        "prompt_products": "int4_native",
    },
    "int4-native-q8/c-step": {
        "weights": "int4",
        "step_products": "int4_native_q8",
        "prompt_products": "int4_native",
        "native_step": "on",
    },
    "int4-native-q8/torch-step": {
        "weights": "int4",
        "step_products": "int4_native_q8",
        "prompt_products": "int4_native",
        "native_step": "off",
    },
    "measured/transformers-code": {"model_code": "transformers"},
    "steps-1-thread": {"step_threads": 1},
    "steps-2-threads": {"step_threads": 2},
    "kernel-attention": {"weights": "int4", "native_attention": "on"},
    "torch-attention": {"weights": "int4", "native_attention": "off"},
}


def _cliff(variant: LanguageModel, measured: LanguageModel) -> str:
    """Why a forced variant is not run on the long prompt: the calibration skipped its prompt
    products as hopeless on this CPU (8-bit products without VNNI take minutes there)."""
    seconds = measured.plan.choices["prompt_products"].seconds
    products = variant.plan.prompt_products
    if variant.weights == "int4" and math.isinf(seconds.get(products, 0.0)):
        return f"{products} prompt products were over 4x float32 in the calibration's probe"
    return ""


def measure_loads(config: Config) -> dict[str, float]:
    loads: dict[str, float] = {}
    source = resolve_language_model(config.model)
    if source.gguf_file and not dense_cache_dir(source, config.models_dir).exists():
        started = time.perf_counter()
        LanguageModel.load(config)  # de-quantizes the GGUF file and writes the dense copy
        loads["first_gguf_s"] = time.perf_counter() - started
    cached = []
    for _ in range(2):
        started = time.perf_counter()
        LanguageModel.load(config)
        cached.append(time.perf_counter() - started)
    loads["cached_dense_s"] = min(cached)
    return loads


def rag_prompt(model: LanguageModel, target_tokens: int) -> list[dict[str, str]]:
    """System rules, numbered passages from the sample corpus up to ~target tokens, a question."""
    paragraphs = [
        paragraph.strip()
        for path in sorted(CORPUS.glob("*.md"), key=lambda p: p.name != "kv-cache.md")
        for paragraph in path.read_text(encoding="utf-8").split("\n\n")
        if len(paragraph.strip()) > 200 and not paragraph.startswith("#")
    ]
    passages: list[str] = []
    for paragraph in paragraphs:
        words = paragraph.split()
        # Trim the first passage to fit; after that, stop at the first one that does not fit.
        while words and model.count_message_tokens(_messages([*passages, " ".join(words)])) > (
            target_tokens
        ):
            words = [] if passages else words[:-5]
        if not words:
            break
        passages.append(" ".join(words))
    return _messages(passages)


def _messages(passages: list[str]) -> list[dict[str, str]]:
    numbered = "\n\n".join(f"[{i}] {text}" for i, text in enumerate(passages, start=1))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Passages:\n\n{numbered}\n\nQuestion: {QUESTION}"},
    ]


def manual_run(
    model: LanguageModel, messages: list[dict[str, str]], arguments: argparse.Namespace
) -> dict[str, Any]:
    text = model.complete(messages, max_new_tokens=arguments.new_tokens)
    stats = model.last_stats
    if stats is None:
        raise RuntimeError("the stream ended without stats")
    return {
        "ttft_s": stats.ttft_s,
        "tokens_per_s": stats.tokens_per_s,
        "new_tokens": stats.new_tokens,
        "generation_s": stats.generation_s,
        "text": text,
    }


def generate_run(
    hf_model: Any,
    tokenizer: Any,
    messages: list[dict[str, str]],
    config: Config,
    arguments: argparse.Namespace,
) -> dict[str, Any]:
    """`generate` on a thread, read through a TextIteratorStreamer."""
    started = time.perf_counter()
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    output: list[Any] = []

    def work() -> None:
        with torch.inference_mode():
            output.append(
                hf_model.generate(
                    **inputs,
                    streamer=streamer,
                    do_sample=False,
                    repetition_penalty=config.repetition_penalty,
                    max_new_tokens=arguments.new_tokens,
                )
            )

    thread = threading.Thread(target=work)
    thread.start()
    first_at, pieces = 0.0, []
    for piece in streamer:
        if piece and not first_at:
            first_at = time.perf_counter()
        pieces.append(piece)
    thread.join()
    ended = time.perf_counter()
    new_tokens = int(output[0].shape[1] - inputs["input_ids"].shape[1])
    ttft = (first_at or ended) - started
    return {
        "ttft_s": ttft,
        "tokens_per_s": (new_tokens - 1) / (ended - first_at) if new_tokens > 1 else 0.0,
        "new_tokens": new_tokens,
        "generation_s": ended - started,
        "text": "".join(pieces),
    }


def prompt_pass_ab(
    kernel: LanguageModel, plain: LanguageModel, messages: list[dict[str, str]], repeats: int
) -> dict[str, Any]:
    """The long prompt's forward pass alone (what the first token waits for), the attention
    kernel and torch's attention taking turns, 2 * `repeats` times each: medians in seconds."""
    ids, _ = kernel._fitting_prompt(messages, 1)
    tokens = torch.tensor([ids])
    seconds: dict[str, list[float]] = {"kernel": [], "torch": []}
    for round_number in range(2 * max(1, repeats)):
        order = ("kernel", "torch") if round_number % 2 == 0 else ("torch", "kernel")
        for name in order:
            model = kernel if name == "kernel" else plain
            with torch.inference_mode():
                started = time.perf_counter()
                model._forward(tokens, model._new_cache())
                seconds[name].append(time.perf_counter() - started)
    return {
        "tokens": len(ids),
        "kernel_used": kernel.prompt_attention == "kernel",
        "attention_alone": attention_ab(kernel, len(ids), repeats),
        "seconds": seconds,
        "median_s": {name: statistics.median_high(times) for name, times in seconds.items()},
    }


def attention_ab(model: LanguageModel, length: int, repeats: int) -> dict[str, Any]:
    """One layer's attention over `length` positions with the model's head shapes (random
    tensors): the C kernel against torch's SDPA (its CPU flash kernel), taking turns; medians of
    10 * `repeats` calls each in milliseconds. Empty when the kernel is unavailable."""
    kernel = PromptAttention.load(model._config.models_dir / "kernels")
    if kernel is None:
        return {}
    settings = model._model.config
    heads, kv_heads = settings.num_attention_heads, settings.num_key_value_heads
    dim = settings.hidden_size // heads
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(1, length, heads, dim, generator=generator).transpose(1, 2)
    key, value = (torch.randn(1, kv_heads, length, dim, generator=generator) for _ in range(2))

    def flash() -> None:
        functional.scaled_dot_product_attention(query, key, value, is_causal=True, enable_gqa=True)

    calls = {"kernel": lambda: kernel(query, key, value, dim**-0.5), "torch": flash}
    milliseconds: dict[str, list[float]] = {"kernel": [], "torch": []}
    for _ in range(10 * max(1, repeats)):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            milliseconds[name].append(1000 * (time.perf_counter() - started))
    return {name: statistics.median_high(times) for name, times in milliseconds.items()}


def cache_ab(
    model: LanguageModel, messages: list[dict[str, str]], steps: int, repeats: int
) -> dict[str, Any]:
    """Decode steps after the long prompt with transformers' `DynamicCache` (concatenates at
    every step) against `kv_cache.growing_cache` (writes in place), taking turns, 2 * `repeats`
    times each, greedy, on the decode loop's thread count: median tokens/s and whether the
    tokens are the same."""
    ids, _ = model._fitting_prompt(messages, steps)
    caches = {"dynamic": lambda: DynamicCache(config=model._model.config)}
    caches["growing"] = lambda: growing_cache(model._model.config)
    speeds: dict[str, list[float]] = {name: [] for name in caches}
    tokens: dict[str, list[int]] = {}
    threads = torch.get_num_threads()
    for round_number in range(2 * max(1, repeats)):
        order = list(caches) if round_number % 2 == 0 else list(reversed(caches))
        for name in order:
            cache, step_input, produced = caches[name](), torch.tensor([ids]), []
            with torch.inference_mode():
                for step in range(steps + 1):
                    if step == 1:
                        torch.set_num_threads(model._step_threads)
                        started = time.perf_counter()
                    logits = model._model(
                        input_ids=step_input,
                        **{cache_argument(model._model): cache},
                        logits_to_keep=1,
                    ).logits
                    step_input = logits[:, -1].argmax(-1, keepdim=True)
                    produced.append(int(step_input))
            speeds[name].append(steps / (time.perf_counter() - started))
            torch.set_num_threads(threads)
            tokens[name] = produced
    return {
        "prompt_tokens": len(ids),
        "steps": steps,
        "tokens_per_s": speeds,
        "median_tokens_per_s": {k: statistics.median_high(v) for k, v in speeds.items()},
        "same_tokens": tokens["dynamic"] == tokens["growing"],
    }


def best_of(repeats: int, run: Any) -> dict[str, Any]:
    """Run `repeats` times; report the run with the best decode speed, keep them all."""
    all_runs = [run() for _ in range(max(1, repeats))]
    best = dict(max(all_runs, key=lambda r: r["tokens_per_s"]))
    best["ttft_s"] = min(r["ttft_s"] for r in all_runs)
    best["all"] = [{k: v for k, v in r.items() if k != "text"} for r in all_runs]
    return best


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Every variant against float32 weights (time to first token, decode speed, same text),
    and `generate` against our loop."""
    runs, out = results["runs"], {}
    load = results["load"]
    if "first_gguf_s" in load:
        out["first_load_over_cached_load"] = load["first_gguf_s"] / load["cached_dense_s"]
    for prompt in ("short", "long"):
        fp32 = runs[f"manual/float32/{prompt}"]
        for key, run in runs.items():
            kind, name, prompt_name = key.split("/", 1)[0], *key.split("/", 1)[1].rsplit("/", 1)
            if kind != "manual" or prompt_name != prompt or name == "float32":
                continue
            out[f"{prompt}/{name}_over_fp32_ttft"] = run["ttft_s"] / fp32["ttft_s"]
            out[f"{prompt}/{name}_over_fp32_tokens_per_s"] = (
                run["tokens_per_s"] / fp32["tokens_per_s"]
            )
            out[f"{prompt}/{name}_same_text_as_fp32"] = float(run["text"] == fp32["text"])
        generate = runs[f"generate/float32/{prompt}"]
        out[f"{prompt}/manual_over_generate_tokens_per_s"] = (
            fp32["tokens_per_s"] / generate["tokens_per_s"]
        )
        out[f"{prompt}/manual_over_generate_ttft"] = fp32["ttft_s"] / generate["ttft_s"]
        out[f"{prompt}/manual_same_text_as_generate"] = float(fp32["text"] == generate["text"])
    medians = results["prompt_pass"]["median_s"]
    if results["prompt_pass"]["kernel_used"]:
        out["long/prompt_pass_kernel_over_torch_attention"] = medians["kernel"] / medians["torch"]
    cache = results["cache"]["median_tokens_per_s"]
    out["long/growing_cache_over_dynamic_cache_tokens_per_s"] = cache["growing"] / cache["dynamic"]
    alone = results["prompt_pass"]["attention_alone"]
    if alone:
        out["long/attention_alone_kernel_over_torch"] = alone["kernel"] / alone["torch"]
    return out


def print_report(results: dict[str, Any]) -> None:
    machine = results["machine"]
    print(
        f"{machine['cpu']} | {machine['cores']} cores | avx512_bf16={machine['avx512_bf16']} | "
        f"OMP_WAIT_POLICY={machine['omp_wait_policy']} | "
        f"torch {machine['torch']} | transformers {machine['transformers']} | load average "
        f"{machine['load_average_start'][0]:.1f} -> {machine['load_average_end'][0]:.1f}"
    )
    for name, seconds in results["load"].items():
        print(f"load {name:<16} {seconds:8.2f} s")
    print(f"prompt tokens: {results['prompt_tokens']}")
    print("measured plan: " + ", ".join(f"{k}={v['chosen']}" for k, v in results["plan"].items()))
    for name, reason in results["skipped"].items():
        print(f"skipped {name}: {reason}")
    print(f"\n{'variant':<28} {'ttft s':>8} {'tok/s':>8} {'new':>5}")
    for name, run in results["runs"].items():
        print(f"{name:<28} {run['ttft_s']:8.3f} {run['tokens_per_s']:8.2f} {run['new_tokens']:5d}")
    prompt_pass = results["prompt_pass"]
    print(
        f"\n{prompt_pass['tokens']}-token prompt pass, medians of alternating runs: "
        + ", ".join(f"{k} {v:.3f} s" for k, v in prompt_pass["median_s"].items())
    )
    alone = prompt_pass["attention_alone"]
    if alone:
        print(
            f"one layer's attention alone, medians: kernel {alone['kernel']:.1f} ms, "
            f"torch {alone['torch']:.1f} ms"
        )
    cache = results["cache"]
    print(
        "decode after the long prompt, medians: "
        + ", ".join(f"{k} cache {v:.1f} tok/s" for k, v in cache["median_tokens_per_s"].items())
        + f" (same tokens: {cache['same_tokens']})"
    )
    print()
    for name, value in results["ratios"].items():
        print(f"{name:<44} {value:6.2f}")


if __name__ == "__main__":
    main()
