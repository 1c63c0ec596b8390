"""Tests for assistant.llm.kv_cache: the cache that grows in place gives what concatenation
gives."""

from __future__ import annotations

import torch
from transformers import AutoConfig, DynamicCache, LlamaConfig
from transformers.cache_utils import DynamicLayer

from assistant.llm.kv_cache import SPARE_POSITIONS, GrowingLayer, growing_cache


def _states(seed: int, length: int, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 3, length, 8, generator=generator),
        torch.randn(batch, 3, length, 8, generator=generator),
    )


def _concatenated(*parts: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([k for k, _ in parts], dim=-2), torch.cat([v for _, v in parts], dim=-2)


def test_steps_give_the_concatenation_and_write_in_place() -> None:
    layer = GrowingLayer()
    prompt = _states(0, 20)
    keys, values = layer.update(*prompt)
    assert torch.equal(keys, prompt[0]) and torch.equal(values, prompt[1])
    parts, start = [prompt], keys.data_ptr()
    for step in range(SPARE_POSITIONS):  # exactly the spare room: no new buffer
        parts.append(_states(step + 1, 1))
        keys, values = layer.update(*parts[-1])
        assert keys.data_ptr() == start
    expected = _concatenated(*parts)
    assert torch.equal(keys, expected[0]) and torch.equal(values, expected[1])
    assert layer.get_seq_length() == 20 + SPARE_POSITIONS
    parts.append(_states(999, 3))  # past the spare room: a larger buffer, same contents
    keys, values = layer.update(*parts[-1])
    assert keys.data_ptr() != start
    expected = _concatenated(*parts)
    assert torch.equal(keys, expected[0]) and torch.equal(values, expected[1])


def test_cropping_then_continuing() -> None:
    layer = GrowingLayer()
    prompt, step, other = _states(0, 10), _states(1, 4), _states(2, 2)
    layer.update(*prompt)
    layer.update(*step)
    layer.crop(-4)  # drop the step again
    keys, values = layer.update(*other)
    expected = _concatenated(prompt, other)
    assert torch.equal(keys, expected[0]) and torch.equal(values, expected[1])


def test_a_replaced_batch_is_not_overwritten() -> None:
    layer = GrowingLayer()
    prompt = _states(0, 6, batch=3)
    layer.update(*prompt)
    layer.batch_select_indices(torch.tensor([2, 0]))  # new tensors, not views of the buffer
    step = _states(1, 1, batch=2)
    keys, values = layer.update(*step)
    expected = _concatenated((prompt[0][[2, 0]], prompt[1][[2, 0]]), step)
    assert torch.equal(keys, expected[0]) and torch.equal(values, expected[1])


def test_a_reset_starts_again() -> None:
    layer = GrowingLayer()
    layer.update(*_states(0, 5))
    layer.reset()
    fresh = _states(1, 2)
    keys, _ = layer.update(*fresh)
    assert torch.equal(keys, fresh[0])


def test_growing_cache_replaces_only_full_attention_layers() -> None:
    config = LlamaConfig(num_hidden_layers=3, hidden_size=32, num_attention_heads=4)
    cache = growing_cache(config)
    assert len(cache.layers) == 3 and all(type(x) is GrowingLayer for x in cache.layers)
    mixed = AutoConfig.for_model(
        "gemma2", num_hidden_layers=2, hidden_size=32, num_attention_heads=4, head_dim=8
    )
    kinds = [type(x) for x in growing_cache(mixed).layers]
    assert [type(x) for x in DynamicCache(config=mixed).layers] == [
        DynamicLayer if kind is GrowingLayer else kind for kind in kinds
    ]
    assert GrowingLayer in kinds and any(kind is not GrowingLayer for kind in kinds)
