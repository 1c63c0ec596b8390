"""The local language model: load it once, then stream an answer to chat messages piece by piece.

Decoding is a plain loop in the caller's thread: one forward pass over the prompt fills a key/value
cache (one that grows in place, `kv_cache`), then one token per step, with the repetition penalty
and sampling warpers applied exactly as `model.generate` applies them (greedy output is
token-for-token the same). There is no background thread, so Ctrl-C lands in the loop itself and
closing the generator stops decoding at once.

Weights come from `weights` (a folder, a hub id, or a GGUF file through its cached dense copy).
On the CPU, what multiplies and attends is measured on the CPU at hand (`kernel_plan`): a 4-bit
GGUF model may run with 4-bit weights again (`quantize`), its prompt's pass in 8-bit integers,
float32 or on the 4-bit codes, its prompt's attention in a C kernel, its steps on one thread or
all, and each step as torch operations or, for a plain Llama on our 4-bit step kernel, as one C
call for the whole model (`step`); torch's one-token steps attend with two small matrix products
instead of the flash kernel (`attention`).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Config
from assistant.devices import available_cores, choose_device
from assistant.errors import ConfigError, ModelError
from assistant.llm import sampling
from assistant.llm.base import GenerationStats, IncrementalDecoder, TemplatedModel
from assistant.llm.weights import four_bit_gguf, load_folder, load_gguf
from assistant.models import ModelSource, resolve_language_model

if TYPE_CHECKING:
    import torch

    from assistant.llm.gemm import Gemm4
    from assistant.llm.gemv import Gemv4
    from assistant.llm.kernel_plan import KernelPlan
    from assistant.llm.step import StepKernel


_LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, ImportError)


class LanguageModel(TemplatedModel):
    """A chat model on one device. Build it with `LanguageModel.load(config)`."""

    def __init__(
        self,
        config: Config,
        model: Any,
        tokenizer: Any,
        device: torch.device,
        plan: KernelPlan | None = None,
    ) -> None:
        self._config = config
        self._model = model
        self._tokenizer = tokenizer
        self._device = device
        self.name = config.model
        self.device = str(device)
        # What multiplies and attends on this CPU, and the measurements behind it (kernel_plan).
        if plan is None:
            from assistant.llm.kernel_plan import dense_plan

            plan = dense_plan("given", torch_threads())
        self.plan = plan
        self.weights = plan.weights  # "int4" (quantize.py) or "dense"
        self.prompt_attention = plan.prompt_attention  # "kernel" (attention.py) or "torch"
        self._step_threads = plan.step_threads
        self.context_length = _context_length(model.config, config.context_cap)
        self.last_stats: GenerationStats | None = None
        self._eos_ids = _eos_ids(model.generation_config, tokenizer)
        _check_decoding_settings(config)
        self._processors = sampling.processors(config)
        self._sampling = config.temperature > 0
        self._cache_argument = cache_argument(model)
        self._plain = hasattr(model, "new_cache")  # our own Llama (`llama`), not transformers'
        self._step_kernel: StepKernel | None = None  # a whole step in C (`step.py`), if it runs

    @classmethod
    def load(cls, config: Config) -> LanguageModel:
        """Resolve `config.model`, load it (through the dense cache for GGUF files) and ready it."""
        import torch

        _check_decoding_settings(config)
        source = resolve_language_model(config.model)
        device, dtype = _choose_device(config.device)
        if device.type == "cpu":
            torch.set_num_threads(available_cores())
        try:
            plain = config.model_code == "auto"  # else transformers' code, even for a Llama
            if source.gguf_file:
                model, tokenizer = load_gguf(source, config.models_dir, dtype, plain=plain)
            else:
                model, tokenizer = load_folder(source.location, dtype, plain=plain)
        except _LOAD_ERRORS as error:
            reason = " ".join(str(error).split())  # transformers' messages span several lines
            raise ModelError(
                f"cannot load model {config.model!r}: {reason}; "
                "pass a local folder or .gguf file with --model"
            ) from error
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(
                f"model {config.model!r} has no chat template; use an instruction-tuned chat model"
            )
        model.to(device)
        model.eval()
        plan = _kernel_plan(config, source, device, model)
        from assistant.llm.attention import PromptAttention, use_cpu_attention
        from assistant.llm.gemm import Gemm4
        from assistant.llm.gemv import Gemv4
        from assistant.llm.llama import LlamaForCausalLM

        prompt_kernel = None
        if plan.weights == "int4":
            gemv = None
            if plan.step_products in ("int4_native", "int4_native_q8"):
                eight_bit = plan.step_products == "int4_native_q8"
                gemv = Gemv4.load(config.models_dir / "kernels", eight_bit=eight_bit)
                if gemv is None:
                    raise ModelError("the 4-bit step kernel cannot be built or run on this CPU")
            gemm = None
            if plan.prompt_products == "int4_native":
                gemm = Gemm4.load(config.models_dir / "kernels")
                if gemm is None:
                    raise ModelError("the 4-bit prompt kernel cannot be built or run on this CPU")
            _quantize(model, config, source, plan, gemv, gemm)
            if plan.prompt_attention == "kernel":
                prompt_kernel = PromptAttention.load(config.models_dir / "kernels")
        if prompt_kernel is None and plan.prompt_attention == "kernel":
            plan = replace(plan, prompt_attention="torch")  # asked for, but it cannot run here
        step_kernel = None
        if isinstance(model, LlamaForCausalLM):
            model.prompt_kernel = prompt_kernel  # its attention is ours already
            if plan.decode_step == "kernel" or _pending(plan, "decode_step"):
                step_kernel = _step_kernel(config, model)
        elif device.type == "cpu":
            use_cpu_attention(model, prompt_kernel)
        plan = _with_step_kernel(plan, step_kernel, config)
        loaded = cls(config, model, tokenizer, device, plan)
        loaded._step_kernel = step_kernel
        loaded._use_step_kernel(plan.decode_step == "kernel")
        if _pending(plan, "step_threads") or _pending(plan, "decode_step"):
            loaded._measure_decoding()
        return loaded

    def _use_step_kernel(self, on: bool) -> None:
        """Run one-token steps in the C step kernel (`step.py`) or as torch operations."""
        if hasattr(self._model, "step_kernel"):
            self._model.step_kernel = self._step_kernel if on else None

    def _measure_decoding(self) -> None:
        """Time a few decoding steps each way of stepping still to be measured (torch's, the C
        step kernel's) on one thread and on every core; keep and cache the fastest
        (`kernel_plan.measure_decoding`)."""
        from assistant.llm import kernel_plan

        prompt_ids = self.prompt_ids([{"role": "user", "content": "Name three colours."}])

        def time_steps(way: str, threads: int) -> float:
            self._step_threads = threads
            self._use_step_kernel(way == "kernel")
            return self.time_tokens(prompt_ids, 9)[1]

        pending = _pending(self.plan, "decode_step")
        ways = ["torch", "kernel"] if pending else [self.plan.decode_step]
        cores = available_cores()
        counts = sorted({1, cores}) if _pending(self.plan, "step_threads") else [self._step_threads]
        step, threads = kernel_plan.measure_decoding(time_steps, ways, counts)
        measured = {
            choice.name: choice for choice in (step, threads) if _pending(self.plan, choice.name)
        }
        for choice in measured.values():
            kernel_plan.remember(self._model, self._config, choice)
        self.plan = replace(
            self.plan,
            step_threads=int(threads.chosen),
            decode_step=step.chosen,
            choices={**self.plan.choices, **measured},
        )
        self._step_threads = self.plan.step_threads
        self._use_step_kernel(self.plan.decode_step == "kernel")

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> Generator[str, None, None]:
        """Yield the answer's text pieces as they are decoded; sets `last_stats` when it ends.

        The prompt is checked at once (InputError if it leaves no room for `max_new_tokens`);
        decoding starts at the first `next()`. Closing the generator cancels decoding.
        """
        started = time.perf_counter()
        prompt_ids, limit = self._fitting_prompt(messages, max_new_tokens)
        return self._token_stream(prompt_ids, limit, started)

    def _text_of(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))

    def _token_stream(
        self, prompt_ids: list[int], limit: int, started: float, *, stop_at_eos: bool = True
    ) -> Generator[str, None, None]:
        import torch

        # inference_mode is entered per step, never across a yield, so it does not leak into
        # the consumer's code between pieces.
        inference = torch.inference_mode()
        generator: torch.Generator | None = None
        if self._sampling:
            generator = torch.Generator(device=self._device).manual_seed(self._config.seed)
        cache = self._new_cache()
        with inference:
            sequence = torch.tensor([prompt_ids], dtype=torch.long, device=self._device)
        step_input = sequence
        decoder = IncrementalDecoder(self._text_of)
        new_tokens, first_piece_at, first_token_at, stopped = 0, 0.0, 0.0, "cancelled"
        threads = torch.get_num_threads()
        try:
            for step in range(limit):
                if step == 1 and self._step_threads != threads:
                    torch.set_num_threads(self._step_threads)  # after the prompt's pass
                with inference:
                    logits = self._forward(step_input, cache)
                    scores = self._processors(sequence, logits.to(dtype=torch.float32))
                    if generator is not None:
                        probabilities = torch.softmax(scores, dim=-1)
                        step_input = torch.multinomial(probabilities, 1, generator=generator)
                    else:
                        step_input = torch.argmax(scores, dim=-1, keepdim=True)
                    sequence = torch.cat([sequence, step_input], dim=-1)
                token = int(step_input[0, 0])
                new_tokens += 1
                first_token_at = first_token_at or time.perf_counter()
                if stop_at_eos and token in self._eos_ids:
                    stopped = "eos"
                    break
                piece = decoder.push(token)
                if piece:
                    first_piece_at = first_piece_at or time.perf_counter()
                    yield piece
            else:
                stopped = "length"
            tail = decoder.flush()
            if tail:
                first_piece_at = first_piece_at or time.perf_counter()
                yield tail
        finally:
            torch.set_num_threads(threads)
            # Drop the key/value cache now: a traceback may keep this frame alive for a while.
            del cache, sequence, step_input
            ended = time.perf_counter()
            self.last_stats = GenerationStats(
                prompt_tokens=len(prompt_ids),
                new_tokens=new_tokens,
                ttft_s=(first_piece_at or ended) - started,
                generation_s=ended - started,
                stopped=stopped,
                first_token_s=(first_token_at or ended) - started,
            )

    def _new_cache(self) -> Any:
        if self._plain:
            return self._model.new_cache()
        from assistant.llm.kv_cache import growing_cache

        return growing_cache(self._model.config)

    def _forward(self, input_ids: torch.Tensor, cache: Any) -> torch.Tensor:
        """The last position's logits, the cache extended by `input_ids`."""
        if self._plain:
            output = self._model(input_ids, cache, logits_to_keep=1)
        else:
            output = self._model(
                input_ids=input_ids,
                **{self._cache_argument: cache},
                use_cache=True,
                logits_to_keep=1,
            )
        logits: torch.Tensor = output.logits[:, -1, :]
        return logits


def _quantize(
    model: Any,
    config: Config,
    source: ModelSource,
    plan: KernelPlan,
    gemv: Gemv4 | None,
    gemm: Gemm4 | None,
) -> None:
    """Pack the model's linear layers as `plan` says (`quantize.quantize_linears`). For a GGUF
    model the packed layers are kept beside its dense copy, keyed on this CPU, the library
    versions and the plan, and later loads read them instead of packing again (a second or
    more of every one-shot command's start); a missing or damaged copy is packed again."""
    from assistant.llm.quantize import SavedLayers, quantize_linears, save_layers

    path = _packed_layers_path(config, source, plan)
    if path is not None and path.is_file():
        try:
            saved = SavedLayers.read(path)
            quantize_linears(
                model, prompt_products=plan.prompt_products, gemv=gemv, gemm=gemm, saved=saved
            )
            return
        except (OSError, ValueError, KeyError, RuntimeError):
            pass  # damaged or not what this model needs: the model is unchanged, pack it
    quantize_linears(model, prompt_products=plan.prompt_products, gemv=gemv, gemm=gemm)
    if path is None:
        return
    try:
        for stale in path.parent.glob(path.name.split(_PACKED, 1)[0] + _PACKED + "*"):
            stale.unlink()
        save_layers(model, path)
    except OSError:
        pass  # a read-only models folder: pack again next time


_PACKED = "-packed-"


def _packed_layers_path(config: Config, source: ModelSource, plan: KernelPlan) -> Path | None:
    from assistant.calibration import key_of
    from assistant.llm.quantize import GROUP_SIZE
    from assistant.llm.weights import dense_cache_dir

    if source.gguf_file is None:
        return None
    dense = dense_cache_dir(source, config.models_dir)
    key = key_of(
        "packed",
        dense=dense.name,
        step_products=plan.step_products,
        prompt_products=plan.prompt_products,
        group_size=GROUP_SIZE,
        layout=1,
    )
    return dense.with_name(f"{dense.name}{_PACKED}{key}.safetensors")


def _pending(plan: KernelPlan, name: str) -> bool:
    """Whether `plan`'s choice `name` is to be measured on the loaded model."""
    from assistant.llm import kernel_plan

    return plan.choices[name].reason == kernel_plan.PENDING


def _step_kernel(config: Config, model: Any) -> StepKernel | None:
    """The C step kernel bound to `model`, or None where it cannot run (`step.StepKernel`)."""
    from assistant.llm.step import StepKernel

    library = StepKernel.library(config.models_dir / "kernels")
    return StepKernel.bind(library, model) if library is not None else None


def _with_step_kernel(plan: KernelPlan, kernel: StepKernel | None, config: Config) -> KernelPlan:
    """`plan` with its decoding step settled where the C step kernel cannot run: torch's, and
    why (an error when a setting forces the kernel)."""
    from assistant.calibration import Choice

    if kernel is not None or (plan.decode_step == "torch" and not _pending(plan, "decode_step")):
        return plan
    if config.native_step == "on":
        raise ModelError(
            "the C step kernel cannot run here: it needs a C compiler, a CPU with AVX2 and FMA, "
            "and a plain Llama whose steps multiply in our 4-bit kernel "
            "(ASSISTANT_STEP_PRODUCTS=int4_native or int4_native_q8)"
        )
    reason = (
        "no choice: the steps' products are not the C kernel's"
        if plan.step_products not in ("int4_native", "int4_native_q8")
        else "no choice: the kernel does not build or run here, or the model is not a plain Llama"
    )
    choice = Choice("decode_step", "torch", {}, reason)
    return replace(plan, decode_step="torch", choices={**plan.choices, "decode_step": choice})


def cache_argument(model: Any) -> str:
    """The name under which the model's forward takes the key/value cache: `cache` in newer
    transformers (which warn on every call given the old name), `past_key_values` before."""
    import inspect

    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _choose_device(setting: str) -> tuple[torch.device, torch.dtype]:
    """auto: CUDA in bfloat16 when torch sees a GPU, else the CPU in float32."""
    import torch

    setting = choose_device(setting)
    if setting == "cpu":
        return torch.device("cpu"), torch.float32
    device = torch.device(setting)
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return device, dtype


def _kernel_plan(
    config: Config, source: ModelSource, device: torch.device, model: Any
) -> KernelPlan:
    """What this CPU runs fastest for `model` (measured once and cached, `kernel_plan`); on a GPU
    the plain path. int4 weights are a CPU path: asking for them on a GPU is an error."""
    from assistant.calibration import CalibrationCache
    from assistant.llm import kernel_plan
    from assistant.llm.quantize import int4_supported

    if device.type != "cpu":
        if config.weights == "int4":
            raise ConfigError(f"int4 weights run on the CPU only, not on {device}")
        return kernel_plan.dense_plan(f"the plain path on {device}", torch_threads())
    if config.weights == "int4" and not int4_supported():
        raise ModelError("this torch build has no int4 CPU kernels; use weights=dense")
    four_bit = (
        config.weights != "dense"
        and source.gguf_file is not None
        and int4_supported()
        and four_bit_gguf(source, config.models_dir)
    )
    return kernel_plan.plan(
        model, config, four_bit=four_bit, cache=CalibrationCache(config.models_dir)
    )


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _context_length(model_config: Any, cap: int) -> int:
    # Tokenizers loaded from GGUF report a meaningless model_max_length; trust the model config.
    positions = getattr(model_config, "max_position_embeddings", None)
    return min(int(positions), cap) if positions else cap


def _eos_ids(generation_config: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(item) for item in value)
    return frozenset(ids)


def _check_decoding_settings(config: Config) -> None:
    if config.repetition_penalty <= 0:
        raise ConfigError("repetition_penalty must be above 0 (1 means no penalty)")
    if not 0 < config.top_p <= 1:
        raise ConfigError("top_p must be above 0 and at most 1")
    if config.top_k_sampling < 0:
        raise ConfigError("top_k_sampling must be 0 (off) or more")
