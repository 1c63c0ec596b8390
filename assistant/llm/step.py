"""A whole decoding step of the plain Llama in one C call (`kernels/step.c`, AVX2 and FMA).

On a CPU without AVX-512 a step of the torch engine spent about two thirds of its time between
its 4-bit products, in ~80 small torch operations per layer (norms, rotary positions, views, the
cache write, attention, residuals), each a few microseconds of dispatch for a few hundred numbers.
`StepKernel` runs the same step, the same arithmetic in the same order as `llama.py` (which stays
the reference: the tests compare the two), as plain loops in C: the token's embedding through
every layer, with the products of `gemv` on the layers' own packed codes, writing the keys and
values into the model's own cache (`llama.LayerCache`), to the head's logits. Whether it runs is
measured on the loaded model (`kernel_plan.measure_decoding`), like every other fast path.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import torch

from assistant.llm import native

# step.c's shape[] fields, in order
_SHAPE = (
    "layers",
    "hidden",
    "intermediate",
    "heads",
    "kv_heads",
    "dim",
    "vocab",
    "eight_bit",
    "threads",
)
_LINEARS = (
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
)
_MLP = ("gate_proj", "up_proj", "down_proj")


class StepKernel:
    """The kernel bound to one model (`bind`): `step(token, cache)` appends the token's keys and
    values to `cache` and returns the next position's logits, [1, vocab] float32."""

    def __init__(self, library: ctypes.CDLL, model: Any, eight_bit: bool) -> None:
        self._step = library.assistant_step
        pointer = ctypes.c_void_p
        self._step.argtypes = [pointer] * 6 + [ctypes.c_float, ctypes.c_int64, ctypes.c_int]
        self._step.restype = ctypes.c_int
        settings = model.config
        self._model = model
        self._vocab = int(settings.vocab_size)
        self._eps = float(settings.rms_norm_eps)
        self._kv_heads, self._dim = int(settings.num_key_value_heads), int(settings.head_dim)
        self._shape = torch.tensor(
            [
                int(settings.num_hidden_layers),
                int(settings.hidden_size),
                int(settings.intermediate_size),
                int(settings.num_attention_heads),
                self._kv_heads,
                self._dim,
                self._vocab,
                int(eight_bit),
                1,
            ],
            dtype=torch.int32,
        )
        self._threads_at = _SHAPE.index("threads")
        self._weights = torch.tensor(_addresses(model), dtype=torch.int64)
        self._embedding = model.model.embed_tokens.weight.detach().contiguous()
        self._inverse = model._inverse_frequency.to(torch.float32).contiguous()

    @staticmethod
    def library(cache: Path) -> ctypes.CDLL | None:
        """The built kernel, or None where it cannot be built or the CPU lacks AVX2 and FMA."""
        library = native.load("step", cache, flags=("-fopenmp", "-lm"))
        if library is None or not library.assistant_step_supported():
            return None
        return library

    @classmethod
    def bind(cls, library: ctypes.CDLL, model: Any) -> StepKernel | None:
        """The kernel for `model`, or None when the model is not one it runs: our own float32
        Llama on the CPU (`llama.py`) whose every product holds the C step kernel's packed codes
        (`quantize.Int4Linear` with a `gemv`), all rounded alike."""
        if not _runs(model):
            return None
        gemvs = {layer._gemv.eight_bit for layer in _int4_layers(model)}
        if len(gemvs) != 1:
            return None
        return cls(library, model, gemvs.pop())

    def step(self, token: int, cache: Any) -> torch.Tensor:
        """The logits after `token` at the cache's next position, the cache extended by one."""
        position = cache.length
        caches: list[int] = []
        for layer_cache in cache.layers:
            keys, values = layer_cache.reserve(position + 1, self._kv_heads, self._dim)
            caches.extend((keys.data_ptr(), values.data_ptr(), keys.shape[-2]))
        addresses = torch.tensor(caches, dtype=torch.int64)
        self._shape[self._threads_at] = torch.get_num_threads()
        logits = torch.empty(1, self._vocab, dtype=torch.float32)
        status = self._step(
            self._weights.data_ptr(),
            addresses.data_ptr(),
            self._embedding.data_ptr(),
            self._inverse.data_ptr(),
            logits.data_ptr(),
            self._shape.data_ptr(),
            self._eps,
            token,
            position,
        )
        if status == 1:
            raise MemoryError("the decoding step kernel ran out of memory")
        if status:
            raise ValueError(f"the decoding step kernel cannot take token {token} at {position}")
        for layer_cache in cache.layers:
            layer_cache.length = position + 1
        return logits


def _runs(model: Any) -> bool:
    if not hasattr(model, "step_kernel"):  # only our own Llama (`llama.py`) takes a step kernel
        return False
    embedding = model.model.embed_tokens.weight
    layers = _int4_layers(model)
    expected = len(model.model.layers) * 7 + 1
    return (
        embedding.dtype == torch.float32
        and embedding.device.type == "cpu"
        and len(layers) == expected
        and all(layer._gemv is not None and layer.bias is None for layer in layers)
    )


def _int4_layers(model: Any) -> list[Any]:
    """The model's products in step.c's order (per layer q, k, v, o, gate, up, down; the head),
    those that are `Int4Linear`s."""
    from assistant.llm.quantize import Int4Linear

    products: list[Any] = []
    for layer in model.model.layers:
        products.extend(getattr(getattr(layer, part), name) for part, name in _LINEARS)
        products.extend(getattr(layer.mlp, name) for name in _MLP)
    products.append(model.lm_head)
    return [product for product in products if isinstance(product, Int4Linear)]


def _addresses(model: Any) -> list[int]:
    """step.c's `weights`: per layer its input norm, q, k, v, o, its second norm, gate, up and
    down (three addresses per product); then the final norm and the head."""

    def product(layer: Any) -> list[int]:
        weight = layer._gemv_weight
        return [weight.codes, weight.scale, weight.minimum]

    addresses: list[int] = []
    for layer in model.model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        addresses.append(layer.input_layernorm.weight.data_ptr())
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            addresses.extend(product(getattr(attention, name)))
        addresses.append(layer.post_attention_layernorm.weight.data_ptr())
        for name in _MLP:
            addresses.extend(product(getattr(mlp, name)))
    addresses.append(model.model.norm.weight.data_ptr())
    addresses.extend(product(model.lm_head))
    return addresses
