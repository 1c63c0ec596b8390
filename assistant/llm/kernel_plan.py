"""Which products, attention and thread counts the torch engine runs, measured on this CPU.

The torch engine has several ways to do the same arithmetic on the CPU, and which is fastest
depends on the CPU more than on anything else:

- the one-token steps multiply by float32 weights or by 4-bit codes (`quantize.Int4Linear`),
  the latter in torch's int4 kernel or in a C kernel of ours (`gemv`, AVX2; its input in float32,
  or rounded to 8 bits per group of 32 for `vpmaddubsw`, as llama.cpp does); a step reads every
  weight once, so fewer bytes usually win, unless the kernel reading them is slow (torch's int4
  kernel is, without AVX-512);
- the prompt's pass multiplies hundreds of rows at once in float32, on the 4-bit codes (in
  torch's kernel, or in a C kernel of ours, `gemm`, that multiplies them by the rows rounded to
  8 bits with AVX2's `vpmaddubsw`), or in torch's 8-bit integer products: on a CPU with
  AVX512-VNNI torch's 8-bit products are the fastest, on one without torch runs them in a plain
  reference loop, far slower than float32 (evals/README.md, one table per CPU class);
- the prompt's attention runs in the C kernel (AVX512-BF16 only) or in torch's;
- a one-token step runs as torch operations (`llama.py`), or, when its products are our C
  kernel's, as one C call for the whole model (`step.py`: without AVX-512, torch's dispatch of
  the ~80 small operations per layer between the products took most of a step);
- the steps run on one thread or on every core.

`plan` times each candidate on the model's own layers (the first decoder layer's products for
the prompt, enough layers to spill out of the CPU's caches for the steps, the model's head shapes
for attention), keeps the fastest unless it does not beat the plain path (float32, torch's
attention, every core) by a clear margin, and caches the result (`calibration`). Each choice can be
forced with its setting (`weights`, `prompt_products`, `native_attention`, `native_step`,
`step_threads`); a
forced choice is not measured. A candidate that is already several times slower than the plain
path on a few rows is not run in full (shown as skipped), so a cliff costs milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from assistant.calibration import CalibrationCache, Choice, best_time, fastest
from assistant.config import Config
from assistant.devices import available_cores
from assistant.llm.plan_cache import (
    SHAPE_FIELDS,
    plain_choices,
    shapes_key,
    with_forced_threads,
    with_settings,
)

PROMPT_ROWS = 256  # rows of a prompt-sized product when measuring (a short RAG prompt has ~1,000)
STEP_BYTES = 96 * 2**20  # float32 weight bytes a step measurement reads: beyond any L3 cache
PROBE_ROWS = 32  # rows of the probe that spots a cliff before a candidate runs in full
PENDING = "to be measured on the loaded model"
HOPELESS = 4.0  # a candidate this many times slower than the plain path in its probe is skipped


@dataclass(frozen=True)
class KernelPlan:
    """What the torch engine runs on this CPU, and the measurements behind each choice."""

    step_products: str  # "int4" | "int4_native" (the C kernel) | "int4_native_q8" | "float32"
    prompt_products: str  # "int8" | "int4" | "int4_native" (the C kernel) | "float32"
    prompt_attention: str  # "kernel" | "torch"
    step_threads: int
    choices: dict[str, Choice]
    decode_step: str = "torch"  # "kernel" (step.py: a whole step in C) | "torch"

    @property
    def weights(self) -> str:
        """The weights the model keeps for its steps: "int4" or "dense"."""
        return "dense" if self.step_products == "float32" else "int4"


def dense_plan(reason: str, threads: int) -> KernelPlan:
    """The plain path: float32 products and torch's attention (a GPU, or no 4-bit model)."""
    return _from_choices(plain_choices(reason, threads))


def plan(
    model: Any, config: Config, *, four_bit: bool, cache: CalibrationCache | None = None
) -> KernelPlan:
    """The plan for a float32 CPU `model` (before any quantization). `four_bit`: the model's
    weights are 4-bit codes already (a 4-bit GGUF file), so 4-bit products lose nothing more;
    for other models 4-bit weights are used only when `config.weights` asks for them."""
    cores = available_cores()
    if not _four_bit_steps_possible(config, four_bit):
        reason = (
            "forced by ASSISTANT_WEIGHTS=dense"
            if config.weights == "dense"
            else "float32 weights: the model is not a 4-bit file"
            if _int4_possible()
            else "this torch has no int4 CPU kernels"
        )
        threads = config.step_threads or cores
        return _from_choices(with_forced_threads(plain_choices(reason, threads), config))
    key = _key(model)
    cache_hit = cache.get(key) if cache is not None else None
    measured = cache_hit if cache_hit is not None else _measure(model, config, cores)
    if cache is not None and cache_hit is None:
        cache.put(key, measured)
    return _apply_settings(measured, config)


def _four_bit_steps_possible(config: Config, four_bit: bool) -> bool:
    """Whether 4-bit weights are a candidate at all: this torch has the kernels, dense weights
    are not forced, and the model is a 4-bit file or a setting asks for 4 bits."""
    asked = config.weights == "int4" or config.step_products not in ("auto", "float32")
    return config.weights != "dense" and _int4_possible() and (asked or four_bit)


def _key(model: Any) -> str:
    return shapes_key({name: getattr(model.config, name, None) for name in SHAPE_FIELDS})


def _int4_possible() -> bool:
    from assistant.llm.quantize import int4_supported

    return int4_supported()


def _apply_settings(measured: dict[str, Choice], config: Config) -> KernelPlan:
    """The measured choices with the settings that force one applied on top."""
    return _from_choices(with_settings(measured, config))


def _from_choices(choices: dict[str, Choice]) -> KernelPlan:
    step_products = choices["step_products"].chosen
    prompt_products = choices["prompt_products"].chosen
    if step_products == "float32":
        # Quantized prompt products need the 4-bit layers, which float32 steps do without.
        prompt_products = "float32"
    threads = int(choices["step_threads"].chosen)
    return KernelPlan(
        step_products,
        prompt_products,
        choices["prompt_attention"].chosen,
        threads,
        choices,
        decode_step=choices["decode_step"].chosen,
    )


def _measure(model: Any, config: Config, cores: int) -> dict[str, Choice]:
    """Time every candidate; the plain path (float32, torch's attention, all cores) is the
    reference each must beat."""
    from assistant.llm.quantize import Int4Linear, Int8Rows, int8_supported

    generator = torch.Generator().manual_seed(0)
    layers = _decoder_layers(model)
    first = _linears(layers[0])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(cores)
        with torch.inference_mode():
            prompt = _measure_prompt(
                first, generator, int8_supported(), Int4Linear, Int8Rows, config
            )
            steps = _measure_steps(layers, generator, cores, Int4Linear, config)
            attention = _measure_attention(model, config, generator)
    finally:
        torch.set_num_threads(threads)
    return {
        "prompt_products": prompt,
        "step_products": steps,
        "prompt_attention": attention,
        "decode_step": Choice("decode_step", "torch", {}, PENDING),
        "step_threads": Choice("step_threads", str(cores), {}, PENDING),
    }


def _decoder_layers(model: Any) -> list[nn.Module]:
    """The model's repeated blocks: the longest `nn.ModuleList` of modules holding linears."""
    candidates: list[nn.ModuleList] = [
        module
        for module in model.modules()
        if isinstance(module, nn.ModuleList) and any(_linears(block) for block in module)
    ]
    if not candidates:
        return [model]
    longest = max(range(len(candidates)), key=lambda index: len(candidates[index]))
    return list(candidates[longest])


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [child for child in module.modules() if isinstance(child, nn.Linear)]


def _inputs(linears: list[nn.Linear], rows: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One input per product; consecutive products with the same width share it, as a layer's
    query, key and value projections (or its gate and up projections) read the same input."""
    inputs: list[torch.Tensor] = []
    for linear in linears:
        if inputs and inputs[-1].shape[-1] == linear.in_features:
            inputs.append(inputs[-1])
        else:
            inputs.append(torch.randn(rows, linear.in_features, generator=generator))
    return inputs


def _measure_prompt(
    linears: list[nn.Linear],
    generator: torch.Generator,
    with_int8: bool,
    int4_linear: Any,
    int8_rows: Any,
    config: Config,
) -> Choice:
    """One decoder layer's products over `PROMPT_ROWS` rows, per kind of product: float32, the
    4-bit codes in torch's kernel and in ours (where it builds), torch's 8-bit products."""
    from assistant.llm.gemm import Gemm4

    inputs = _inputs(linears, PROMPT_ROWS, generator)
    candidates: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
        "float32": [_float32_product(linear) for linear in linears],
        "int4": [int4_linear(linear) for linear in linears],
    }
    gemm = Gemm4.load(Path(config.models_dir) / "kernels")
    if gemm is not None:
        candidates["int4_native"] = [int4_linear(linear, gemm=gemm) for linear in linears]
    if with_int8:
        rows = int8_rows()
        candidates["int8"] = [int4_linear(linear, rows=rows) for linear in linears]
    seconds = _time_candidates(candidates, inputs, plain="float32")
    return Choice("prompt_products", fastest(seconds, "float32"), seconds)


def _float32_product(linear: nn.Linear) -> Callable[[torch.Tensor], torch.Tensor]:
    weight, bias = linear.weight, linear.bias
    return lambda x: functional.linear(x, weight, bias)


def _time_candidates(
    candidates: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]],
    inputs: list[torch.Tensor],
    plain: str,
) -> dict[str, float]:
    """Seconds per candidate to run all its products, the plain one first. Each other candidate
    first runs a probe (its first product on a few rows); one `HOPELESS` times slower than the
    plain path's probe is not run in full (inf: skipped), so a cliff costs milliseconds."""

    seconds = {plain: best_time(_run_all(candidates[plain], inputs))}
    probe = [inputs[0][:PROBE_ROWS]]
    plain_probe = best_time(_run_all(candidates[plain][:1], probe))
    for name, products in candidates.items():
        if name == plain:
            continue
        # best of 3: one probe of ~50 microseconds is at the mercy of a single wake-up or
        # preemption on a shared machine (a kernel 0.8x float32 was once skipped as "hopeless")
        hopeless = best_time(_run_all(products[:1], probe)) > HOPELESS * plain_probe
        seconds[name] = math.inf if hopeless else best_time(_run_all(products, inputs))
    return seconds


def _run_all(
    products: list[Callable[[torch.Tensor], torch.Tensor]], inputs: list[torch.Tensor]
) -> Callable[[], None]:
    """A call that runs each product on its input."""

    def run() -> None:
        for product, x in zip(products, inputs, strict=False):
            product(x)

    return run


def _measure_steps(
    layers: list[nn.Module],
    generator: torch.Generator,
    cores: int,
    int4_linear: Any,
    config: Config,
) -> Choice:
    """One-row products over enough layers to read `STEP_BYTES` of float32 weights, with
    float32 weights, 4-bit codes in torch's kernel and in ours (where it builds), on one thread
    and on every core."""
    from assistant.llm.gemv import Gemv4

    linears: list[nn.Linear] = []
    for layer in layers:
        linears.extend(_linears(layer))
        if sum(linear.weight.numel() * 4 for linear in linears) >= STEP_BYTES:
            break
    inputs = _inputs(linears, 1, generator)
    products = {
        "float32": [_float32_product(linear) for linear in linears],
        "int4": [int4_linear(linear) for linear in linears],
    }
    for name, eight_bit in (("int4_native", False), ("int4_native_q8", True)):
        gemv = Gemv4.load(Path(config.models_dir) / "kernels", eight_bit=eight_bit)
        if gemv is not None:
            products[name] = [int4_linear(linear, gemv=gemv) for linear in linears]
    counts = sorted({1, cores})
    timings: dict[tuple[str, int], float] = {}
    for thread_count in counts:
        torch.set_num_threads(thread_count)
        for name, candidate in products.items():
            timings[(name, thread_count)] = best_time(_run_all(candidate, inputs))
    torch.set_num_threads(cores)
    # Each kind of product at its better thread count, then the better kind. The thread count
    # itself is measured on the loaded model (`measure_step_threads`): between the products a
    # step runs ~20 small operations per layer whose wake-ups these products do not show.
    step_seconds = {name: min(timings[(name, count)] for count in counts) for name in products}
    return Choice("step_products", fastest(step_seconds, "float32"), step_seconds)


def measure_decoding(
    time_steps: Callable[[str, int], float], ways: Sequence[str], counts: Sequence[int]
) -> tuple[Choice, Choice]:
    """Seconds per decoding step of the loaded model for each way of stepping ("torch", and
    "kernel" where the C step runs) on each thread count, taking turns twice
    (`time_steps(way, threads)`); the fastest pair unless it does not beat the first way on the
    most threads by a clear margin. Returns the `decode_step` and `step_threads` choices."""
    seconds = {(way, count): math.inf for way in ways for count in counts}
    for _ in range(2):
        for way in ways:
            for count in counts:
                seconds[(way, count)] = min(seconds[(way, count)], time_steps(way, count))
    label = {pair: f"{pair[0]}/{pair[1]}" for pair in seconds}
    best = fastest(
        {label[pair]: value for pair, value in seconds.items()}, label[(ways[0], max(counts))]
    )
    way, count = next(pair for pair in seconds if label[pair] == best)
    step = Choice("decode_step", way, {name: seconds[(name, count)] for name in ways})
    threads = Choice("step_threads", str(count), {str(n): seconds[(way, n)] for n in counts})
    return step, threads


def remember(model: Any, config: Config, choice: Choice) -> None:
    """Store a choice measured on the loaded model beside the others of its plan."""
    cache = CalibrationCache(config.models_dir)
    key = _key(model)
    measured = cache.get(key)
    if measured is not None:
        cache.put(key, {**measured, choice.name: choice})


def _measure_attention(model: Any, config: Config, generator: torch.Generator) -> Choice:
    """The prompt's causal attention over `PROMPT_ROWS` positions with the model's head shapes:
    the C kernel (where it builds and this CPU has what it needs) against torch's."""
    from assistant.llm.attention import PromptAttention

    kernels = Path(config.models_dir) / "kernels"
    reason = PromptAttention.unavailable_reason(kernels)
    kernel = PromptAttention.load(kernels) if reason is None else None
    if kernel is None:
        return Choice("prompt_attention", "torch", {}, f"no choice: {reason}")
    settings = model.config
    heads = int(settings.num_attention_heads)
    kv_heads = int(getattr(settings, "num_key_value_heads", None) or heads)
    dim = int(getattr(settings, "head_dim", None) or settings.hidden_size // heads)
    query = torch.randn(1, heads, PROMPT_ROWS, dim, generator=generator)
    key = torch.randn(1, kv_heads, PROMPT_ROWS, dim, generator=generator)
    value = torch.randn(1, kv_heads, PROMPT_ROWS, dim, generator=generator)
    scale = dim**-0.5

    def with_torch() -> torch.Tensor:
        return functional.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=scale, enable_gqa=kv_heads != heads
        )

    seconds = {"torch": best_time(with_torch, repeats=5)}
    if kernel(query, key, value, scale) is None:
        return Choice("prompt_attention", "torch", seconds, "no choice: shapes the kernel lacks")
    seconds["kernel"] = best_time(lambda: kernel(query, key, value, scale), repeats=5)
    return Choice("prompt_attention", fastest(seconds, "torch"), seconds)
