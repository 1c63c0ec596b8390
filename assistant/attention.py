"""Attention for one new token on the CPU, without the flash kernel.

When decoding, each step attends one query to the whole key/value cache. torch's CPU flash
kernel is built for long queries and spends most of a decoding step on this tiny product at long
contexts; two small matrix products and a softmax do the same work several times faster.
Grouped-query heads are handled by folding the query heads onto their key/value head, so the
cache is never copied. Anything else (the prompt's forward pass, masks with position biases,
dropout) goes to transformers' own SDPA attention.
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "assistant_decode"


def decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: (batch, heads, length, dim) tensors in,
    (batch, length, heads, dim) out."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    special = kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None
    if length != 1 or dropout or special or heads % kv_heads:
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
    folded = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    scores = torch.matmul(folded, key.transpose(-1, -2))
    scores = scores * (scaling if scaling is not None else dim**-0.5)
    if attention_mask is not None:
        mask = attention_mask.reshape(batch, 1, 1, -1)
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    probabilities = torch.softmax(scores.to(torch.float32), dim=-1).to(value.dtype)
    output = torch.matmul(probabilities, value).reshape(batch, heads, 1, dim)
    return output.transpose(1, 2), None


def use_decode_attention(model: Any) -> bool:
    """Switch a model that uses SDPA attention to `decode_attention`; False if it uses another."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(NAME, decode_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True
