"""Tests for assistant.llm.attention (one-token steps, the prompt kernel) and
assistant.llm.native."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from assistant.llm import native
from assistant.llm.attention import PromptAttention, cpu_attention


def _reference(query, key, value, mask=None, causal=False):  # type: ignore[no-untyped-def]
    """SDPA in float32 with the key/value heads repeated: (batch, length, heads, dim) out."""
    repeat = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(repeat, dim=1)
    value = value.repeat_interleave(repeat, dim=1)
    if causal:
        length, keys = query.shape[2], key.shape[2]
        mask = torch.ones(length, keys, dtype=torch.bool).tril(keys - length)
    out = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    return out.transpose(1, 2)


def _kernel_arithmetic(query, key, value, scale):  # type: ignore[no-untyped-def]
    """What the kernel computes, in float64: bfloat16 inputs (the query pre-scaled for base-2
    exponents), probabilities rounded to bfloat16 for the value product, exact sums."""

    def rounded(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.float().bfloat16().double()

    repeat = query.shape[1] // key.shape[1]
    query = rounded(query * (scale * 1.4426950408889634))
    key = rounded(key).repeat_interleave(repeat, dim=1)
    value = rounded(value).repeat_interleave(repeat, dim=1)
    length, keys = query.shape[2], key.shape[2]
    scores = query @ key.transpose(-1, -2)
    visible = torch.ones(length, keys, dtype=torch.bool).tril(keys - length)
    scores = scores.masked_fill(~visible, float("-inf"))
    weights = torch.exp2(scores - scores.amax(-1, keepdim=True))
    out = (rounded(weights) @ value) / weights.sum(-1, keepdim=True)
    return out.transpose(1, 2).float()


def _tensors(seed: int, heads: int, kv_heads: int, length: int, keys: int, dim: int):  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(seed)
    # Queries as the model makes them: a (batch, heads, length, dim) view of position-major rows.
    query = torch.randn(1, length, heads, dim, generator=generator).transpose(1, 2) * 2
    key = torch.randn(1, kv_heads, keys, dim, generator=generator) * 2
    value = torch.randn(1, kv_heads, keys, dim, generator=generator)
    return query, key, value


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> PromptAttention:
    loaded = PromptAttention.load(tmp_path_factory.mktemp("kernels"))
    if loaded is None:
        pytest.skip("the attention kernel needs a C compiler and a CPU with AVX512-BF16")
    return loaded


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_one_token_matches_sdpa_with_grouped_heads(mask_kind: str) -> None:
    query, key, value = _tensors(3, heads=6, kv_heads=2, length=1, keys=37, dim=16)
    mask = None
    if mask_kind == "bool":
        mask = torch.ones(1, 1, 1, 37, dtype=torch.bool)
        mask[..., :5] = False
    elif mask_kind == "float":
        mask = torch.zeros(1, 1, 1, 37)
        mask[..., 30:] = -1e4
    module = SimpleNamespace(num_key_value_groups=3, is_causal=True)
    out, weights = cpu_attention(module, query, key, value, mask)  # type: ignore[arg-type]
    assert weights is None
    assert out.shape == (1, 1, 6, 16)
    assert torch.allclose(out, _reference(query, key, value, mask), atol=1e-5)


def test_prompt_goes_to_sdpa_without_the_kernel() -> None:
    query, key, value = _tensors(4, heads=4, kv_heads=4, length=9, keys=9, dim=8)
    module = SimpleNamespace(num_key_value_groups=1, is_causal=True)
    out, _ = cpu_attention(module, query, key, value, None)  # type: ignore[arg-type]
    assert torch.allclose(out, _reference(query, key, value, causal=True), atol=1e-5)


@pytest.mark.parametrize(
    ("heads", "kv_heads", "length", "keys", "dim"),
    [
        (9, 3, 300, 300, 64),  # SmolLM2's heads; several blocks of 32 positions
        (9, 3, 5, 5, 64),  # shorter than one block
        (4, 2, 33, 40, 128),  # queries after 7 earlier keys; one position past a block
        (8, 8, 100, 100, 32),  # no grouping
        (6, 1, 70, 70, 96),  # one key/value head for all
    ],
)
def test_kernel_is_float32_attention_to_bfloat16_precision(
    kernel: PromptAttention, heads: int, kv_heads: int, length: int, keys: int, dim: int
) -> None:
    query, key, value = _tensors(5, heads, kv_heads, length, keys, dim)
    out = kernel(query, key, value, dim**-0.5)
    assert out is not None and out.shape == (1, length, heads, dim)
    # Its arithmetic, up to float32 sums and the exponent's polynomial (which may round a
    # probability to the neighbouring bfloat16 value, one step being 1/256 of it):
    difference = (out - _kernel_arithmetic(query, key, value, dim**-0.5)).abs()
    assert float(difference.mean()) < 1e-5 and float(difference.max()) < 0.02
    # and as far from float32 attention as torch's own attention on bfloat16 inputs is:
    expected = _reference(query, key, value, causal=True)
    rounded = _reference(query.bfloat16(), key.bfloat16(), value.bfloat16(), causal=True).float()
    error, yardstick = (out - expected).abs(), (rounded - expected).abs()
    assert float(error.mean()) < 1.5 * float(yardstick.mean())


def test_kernel_rows_attend_only_to_earlier_keys(kernel: PromptAttention) -> None:
    """Changing the last key moves only the last position's output."""
    query, key, value = _tensors(6, heads=9, kv_heads=3, length=70, keys=70, dim=64)
    before = kernel(query, key, value, 0.125)
    key[:, :, -1] += 5
    value[:, :, -1] -= 5
    after = kernel(query, key, value, 0.125)
    assert before is not None and after is not None
    assert torch.equal(before[:, :-1], after[:, :-1])
    assert not torch.equal(before[:, -1], after[:, -1])


def test_kernel_declines_shapes_it_does_not_take(kernel: PromptAttention) -> None:
    query, key, value = _tensors(7, heads=4, kv_heads=2, length=20, keys=20, dim=16)
    assert kernel(query, key, value, 0.25) is None
    module = SimpleNamespace(num_key_value_groups=2, is_causal=True)
    out, _ = cpu_attention(module, query, key, value, None, prompt=kernel)  # type: ignore[arg-type]
    assert torch.allclose(out, _reference(query, key, value, causal=True), atol=1e-5)


def test_padded_prompts_and_float64_go_to_sdpa(kernel: PromptAttention) -> None:
    query, key, value = _tensors(8, heads=4, kv_heads=2, length=12, keys=12, dim=64)
    module = SimpleNamespace(num_key_value_groups=2, is_causal=True)
    mask = torch.ones(12, 12, dtype=torch.bool).tril()
    mask[:, :3] = False  # left padding
    mask = mask | torch.eye(12, dtype=torch.bool)
    out, _ = cpu_attention(module, query, key, value, mask[None, None], prompt=kernel)  # type: ignore[arg-type]
    assert torch.allclose(out, _reference(query, key, value, mask), atol=1e-5)
    wide = [t.double() for t in (query, key, value)]
    out, _ = cpu_attention(module, *wide, None, prompt=kernel)  # type: ignore[arg-type]
    assert out.dtype == torch.float64
    assert torch.allclose(out, _reference(*wide, causal=True), atol=1e-9)


def test_cpu_attention_uses_the_kernel_for_a_causal_prompt(kernel: PromptAttention) -> None:
    query, key, value = _tensors(9, heads=9, kv_heads=3, length=40, keys=40, dim=64)
    module = SimpleNamespace(num_key_value_groups=3, is_causal=True)
    out, _ = cpu_attention(module, query, key, value, None, prompt=kernel)  # type: ignore[arg-type]
    direct = kernel(query, key, value, 0.125)
    assert direct is not None and torch.equal(out, direct)


# native: building kernels ---------------------------------------------------------------------


def _source(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "probe.c").write_text(text)
    return folder


def test_a_kernel_is_built_once_and_reused(tmp_path: Path) -> None:
    if native.compiler() is None:
        pytest.skip("no C compiler on this machine")
    sources = _source(tmp_path / "src", "int probe(int x) { return x * 3; }\n")
    cache = tmp_path / "cache"
    library = native.load("probe", cache, sources=sources)
    assert library is not None and library.probe(7) == 21
    built = list(cache.iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"
    stamp = built[0].stat().st_mtime_ns
    assert native.load("probe", cache, sources=sources) is not None
    assert list(cache.iterdir()) == built and built[0].stat().st_mtime_ns == stamp
    (sources / "probe.c").write_text("int probe(int x) { return x * 4; }\n")  # a new source
    library = native.load("probe", cache, sources=sources)
    assert library is not None and library.probe(7) == 28
    assert len(list(cache.iterdir())) == 2


def test_a_broken_kernel_leaves_nothing_behind(tmp_path: Path) -> None:
    if native.compiler() is None:
        pytest.skip("no C compiler on this machine")
    sources = _source(tmp_path / "src", "int probe(int x) { return x * ; }\n")
    cache = tmp_path / "cache"
    assert native.load("probe", cache, sources=sources) is None
    assert list(cache.iterdir()) == []


def test_without_a_compiler_there_is_no_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CC", raising=False)
    assert native.compiler() is None
    assert PromptAttention.load(tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()
