"""Attention on the CPU: one new token without the flash kernel, a whole prompt in a C kernel.

When decoding, each step attends one query to the whole key/value cache. torch's CPU flash
kernel is built for long queries and spends most of a decoding step on this tiny product at long
contexts; two small matrix products and a softmax do the same work without that overhead.
Grouped-query heads are handled by folding the query heads onto their key/value head, so the
cache is never copied.

The prompt's causal pass can go to `PromptAttention`, a C kernel (`kernels/attention.c`, built on
first use by `native`) that multiplies in bfloat16 with float32 sums on CPUs with AVX512-BF16 and
skips the blocks above the diagonal, which a causal mask would only discard (how it compares with
torch's flash kernel: evals/README.md, Generation, from evals/bench/generation.py). Its products
round their inputs to bfloat16 as torch's own bfloat16 attention does, so it is used with 4-bit
weights (whose products already round so), never for float32 weights. Anything else (masks
with padding, position biases, dropout) goes to transformers' SDPA attention.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Any

import torch

from assistant.llm import native

NAME = "assistant_cpu"
PROMPT_NAME = "assistant_cpu_prompt"  # the same, with the prompt kernel


class PromptAttention:
    """Causal attention over a whole prompt (batch of one, no padding) in the C kernel."""

    def __init__(self, library: ctypes.CDLL) -> None:
        pointer, integer = ctypes.c_void_p, ctypes.c_int
        self._attend = library.assistant_causal_attention
        self._attend.argtypes = [pointer] * 4 + [integer] * 5 + [ctypes.c_float, integer]
        self._attend.restype = integer

    @classmethod
    def load(cls, cache: Path) -> PromptAttention | None:
        """The kernel built into `cache`; None without a C compiler or AVX512-BF16."""
        library, _ = native.attention_library(cache)
        return None if library is None else cls(library)

    @staticmethod
    def unavailable_reason(cache: Path) -> str | None:
        """None when the kernel works on this machine (building it into `cache` if needed);
        else why not, in a few words (for `assistant info`)."""
        return native.attention_library(cache)[1]

    def __call__(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float
    ) -> torch.Tensor | None:
        """(1, heads, length, dim) float32 query, (1, kv_heads, positions, dim) key and value in;
        (1, length, heads, dim) out, query i attending to keys 0..positions - length + i.
        None when the kernel does not take these shapes (dim not 32..128 by 32)."""
        _, heads, length, dim = query.shape
        kv_heads, positions = key.shape[1], key.shape[2]
        # The kernel wants position-major queries: a view of the projection's output already is.
        queries = query[0].transpose(0, 1).contiguous()
        keys, values = key[0].contiguous(), value[0].contiguous()
        out = torch.empty(length, heads, dim, dtype=torch.float32)
        status = self._attend(
            queries.data_ptr(),
            keys.data_ptr(),
            values.data_ptr(),
            out.data_ptr(),
            length,
            positions,
            heads,
            kv_heads,
            dim,
            scaling,
            torch.get_num_threads(),
        )
        if status == 1:
            raise MemoryError("the attention kernel ran out of memory")
        return out.unsqueeze(0) if status == 0 else None


def cpu_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    prompt: PromptAttention | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: (batch, heads, length, dim) tensors in,
    (batch, length, heads, dim) out. `prompt`: the kernel for a whole prompt's causal pass."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    special = kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None
    scale = scaling if scaling is not None else dim**-0.5
    plain = not (dropout or special or heads % kv_heads)
    if plain and length == 1:
        return one_token_attention(query, key, value, attention_mask, scale), None
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if (
        plain
        and prompt is not None
        and causal
        and attention_mask is None  # transformers leaves it out for a causal, unpadded prompt
        and batch == 1
        and key.shape[2] == length
        and query.dtype == key.dtype == value.dtype == torch.float32
        and query.device.type == "cpu"
    ):
        out = prompt(query, key, value, scale)
        if out is not None:
            return out, None
    return sdpa_attention_forward(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=dropout,
        scaling=scaling,
        is_causal=is_causal,
        **kwargs,
    )


def one_token_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """One query position per head against the cache: (batch, heads, 1, dim) in, (batch, 1,
    heads, dim) out, grouped heads folded onto their key/value head."""
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    folded = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    scores = torch.matmul(folded, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        mask = attention_mask.reshape(batch, 1, 1, -1)
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    probabilities = torch.softmax(scores.to(torch.float32), dim=-1).to(value.dtype)
    output = torch.matmul(probabilities, value).reshape(batch, heads, 1, dim)
    return output.transpose(1, 2)


def use_cpu_attention(model: Any, prompt: PromptAttention | None = None) -> bool:
    """Switch a model that uses SDPA attention to `cpu_attention` (with the prompt kernel when
    given); False if it uses another attention."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    if getattr(model.config, "_attn_implementation", None) not in ("sdpa", NAME, PROMPT_NAME):
        return False
    name = NAME if prompt is None else PROMPT_NAME
    function = cpu_attention if prompt is None else functools.partial(cpu_attention, prompt=prompt)
    AttentionInterface.register(name, function)
    AttentionMaskInterface.register(name, sdpa_mask)
    model.set_attn_implementation(name)
    return True
