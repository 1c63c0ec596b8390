"""A key/value cache that grows in place instead of being copied at every step.

transformers' `DynamicCache` appends each step's keys and values with `torch.cat`, which copies
the whole cache of every layer at every step, so each new token costs memory traffic that grows
with the prompt. `GrowingLayer` keeps spare room after the filled positions (at least 512 more, or
half again) and writes each step into it, returning views of the filled part: a step writes only
its own keys and values, and the tokens are the same (measured in evals/README.md, Generation, from
evals/bench/generation.py's `cache` section).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from assistant.llm.llama import SPARE_POSITIONS, grown_capacity

__all__ = ["SPARE_POSITIONS", "GrowingLayer", "growing_cache"]


class GrowingLayer(DynamicLayer):  # type: ignore[misc, no-untyped-call]
    """A `DynamicLayer` whose keys and values are views of a larger buffer."""

    _keys_buffer: torch.Tensor | None = None
    _values_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._keys_buffer = self._values_buffer = None
        cached: Any = self.keys  # transformers types it as possibly None
        filled = cached.shape[-2] if cached.numel() else 0
        needed = filled + key_states.shape[-2]
        keys, values = self._keys_buffer, self._values_buffer
        if keys is None or values is None or not _fits(keys, cached, key_states, needed):
            keys, values = self._grown(key_states, value_states, filled, needed)
            self._keys_buffer, self._values_buffer = keys, values
        keys[..., filled:needed, :] = key_states
        values[..., filled:needed, :] = value_states
        self.keys, self.values = keys[..., :needed, :], values[..., :needed, :]
        return self.keys, self.values

    def _grown(
        self, key_states: torch.Tensor, value_states: torch.Tensor, filled: int, needed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """New buffers with room for `needed` positions and more, the first `filled` copied."""
        cached_keys: Any = self.keys
        cached_values: Any = self.values
        shape = (*key_states.shape[:-2], grown_capacity(needed), key_states.shape[-1])
        keys, values = key_states.new_empty(shape), value_states.new_empty(shape)
        if filled:
            keys[..., :filled, :] = cached_keys
            values[..., :filled, :] = cached_values
        return keys, values


def _fits(
    buffer: torch.Tensor, cached: torch.Tensor, key_states: torch.Tensor, needed: int
) -> bool:
    """Whether `needed` positions fit and the cached keys are still the start of the buffer
    (cropping keeps them so; `batch_select_indices` and the like make new tensors)."""
    return (
        needed <= buffer.shape[-2]
        and buffer.shape[:-2] == key_states.shape[:-2]
        and (cached.numel() == 0 or cached.data_ptr() == buffer.data_ptr())
    )


def growing_cache(model_config: Any) -> DynamicCache:
    """transformers' `DynamicCache` for `model_config`, its full-attention layers growing in place
    (sliding-window and other special layers are left as they are)."""
    cache = DynamicCache(config=model_config)
    cache.layers = [
        GrowingLayer() if type(layer) is DynamicLayer else layer  # type: ignore[no-untyped-call]
        for layer in cache.layers
    ]
    if cache.layer_class_to_replicate is DynamicLayer:  # layers made as they are first used
        cache.layer_class_to_replicate = GrowingLayer
    return cache
