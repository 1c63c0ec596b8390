"""Tests for assistant.llm.llama (the plain-torch Llama), against transformers' Llama.

A tiny random Llama (2 layers, grouped heads) is saved as transformers saves a model and loaded
by `llama.load`; its logits must agree with transformers' to float rounding on a whole prompt,
on one-token steps through the cache, on a prompt in two chunks, and in greedy decoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from assistant.llm import llama

VOCAB = 96
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def tiny_llama(folder: Path, tie_word_embeddings: bool) -> Any:
    """A random transformers Llama saved in `folder`; returns it (in eval mode)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=256,
        tie_word_embeddings=tie_word_embeddings,
        # Larger than the default 0.02, so the logits spread and greedy decoding does not
        # repeat one token (which a wrong cache could also produce).
        initializer_range=0.2,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


@pytest.fixture(params=[True, False], ids=["tied", "untied"], scope="module")
def models(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, llama.LlamaForCausalLM]:
    """(transformers' model, ours loaded from its saved folder)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    reference = tiny_llama(folder, tie_word_embeddings=request.param)
    ours = llama.load(folder)
    assert ours is not None
    return reference, ours


def prompt(length: int, batch: int = 1, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (batch, length), generator=generator)


def test_load_reads_the_settings_and_ties_the_head_as_the_config_says(
    models: tuple[Any, llama.LlamaForCausalLM],
) -> None:
    reference, ours = models
    tied = reference.config.tie_word_embeddings
    assert ours.config.tie_word_embeddings is tied
    assert (ours.lm_head.weight is ours.model.embed_tokens.weight) is tied
    assert ours.config.num_key_value_heads == 2 and ours.config.head_dim == 16
    assert ours.generation_config.eos_token_id == reference.generation_config.eos_token_id
    assert ours.lm_head.weight.dtype == torch.float32
    assert not any(parameter.is_meta for parameter in ours.parameters())
    torch.testing.assert_close(ours.lm_head.weight, reference.lm_head.weight, atol=0, rtol=0)


@pytest.mark.parametrize("batch", [1, 2])
def test_a_whole_prompt_gives_transformers_logits(
    models: tuple[Any, llama.LlamaForCausalLM], batch: int
) -> None:
    reference, ours = models
    ids = prompt(23, batch)
    with torch.no_grad():
        expected = reference(ids).logits
        logits = ours(ids).logits
        last = ours(ids, logits_to_keep=1).logits
    assert logits.shape == (batch, 23, VOCAB)
    torch.testing.assert_close(logits, expected, **TOLERANCE)
    torch.testing.assert_close(last, expected[:, -1:], **TOLERANCE)


def test_one_token_steps_through_the_cache_give_transformers_logits(
    models: tuple[Any, llama.LlamaForCausalLM],
) -> None:
    reference, ours = models
    ids = prompt(17)
    with torch.no_grad():
        expected = reference(ids).logits
        cache = ours.new_cache()
        first = ours(ids[:, :10], cache).logits
        torch.testing.assert_close(first, expected[:, :10], **TOLERANCE)
        for position in range(10, 17):
            step = ours(ids[:, position : position + 1], cache).logits
            assert cache.length == position + 1
            torch.testing.assert_close(step, expected[:, position : position + 1], **TOLERANCE)


@pytest.mark.parametrize("split", [1, 9, 15])
def test_a_prompt_in_two_chunks_gives_transformers_logits(
    models: tuple[Any, llama.LlamaForCausalLM], split: int
) -> None:
    """The second chunk (several tokens after a filled cache) runs under an explicit mask."""
    reference, ours = models
    ids = prompt(20, seed=2)
    with torch.no_grad():
        expected = reference(ids).logits
        cache = ours.new_cache()
        first = ours(ids[:, :split], cache).logits
        second = ours(ids[:, split:], cache).logits
    assert cache.length == 20
    torch.testing.assert_close(first, expected[:, :split], **TOLERANCE)
    torch.testing.assert_close(second, expected[:, split:], **TOLERANCE)


def test_greedy_decoding_gives_transformers_tokens(
    models: tuple[Any, llama.LlamaForCausalLM],
) -> None:
    reference, ours = models
    ids = prompt(12, seed=3)
    new_tokens = 10
    with torch.no_grad():
        generated = reference.generate(
            ids,
            attention_mask=torch.ones_like(ids),  # else generate takes id 0 (pad) for padding
            do_sample=False,
            max_new_tokens=new_tokens,
            eos_token_id=None,
            pad_token_id=0,
        )
        expected = generated[0, ids.shape[1] :].tolist()
        cache = ours.new_cache()
        tokens: list[int] = []
        logits = ours(ids, cache, logits_to_keep=1).logits
        for _ in range(new_tokens):
            token = int(logits[0, -1].argmax())
            tokens.append(token)
            logits = ours(torch.tensor([[token]]), cache).logits
    assert len(expected) == new_tokens
    assert tokens == expected
    assert len(set(tokens)) > 1  # the comparison is about more than one repeated token


def llama_config(**changes: Any) -> dict[str, Any]:
    """A plain Llama's config.json as transformers 5 writes it, with `changes`."""
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 64,
        "intermediate_size": 128,
        "max_position_embeddings": 256,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "tie_word_embeddings": False,
        "vocab_size": VOCAB,
    }
    config.update(changes)
    return config


def test_settings_of_a_plain_llama_in_either_config_layout() -> None:
    settings = llama.LlamaSettings.of(llama_config())
    assert settings is not None
    assert (settings.rope_theta, settings.head_dim, settings.num_key_value_heads) == (1e4, 16, 2)
    # transformers 4 wrote the rotary base at the top level and `rope_scaling: null`.
    older = llama_config(rope_theta=500000.0, rope_scaling=None)
    del older["rope_parameters"]
    settings = llama.LlamaSettings.of(older)
    assert settings is not None and settings.rope_theta == 500000.0


@pytest.mark.parametrize(
    "changes",
    [
        {"model_type": "mistral"},
        {"architectures": ["LlamaForSequenceClassification"]},
        {"rope_scaling": {"type": "linear", "factor": 2.0}},
        {"rope_parameters": {"rope_theta": 10000.0, "rope_type": "linear", "factor": 2.0}},
        {
            "rope_parameters": {
                "rope_theta": 500000.0,
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            }
        },
        {"attention_bias": True},
        {"mlp_bias": True},
        {"hidden_act": "gelu"},
        {"pretraining_tp": 2},
    ],
    ids=lambda changes: ",".join(changes),
)
def test_settings_of_a_variant_this_file_does_not_run_are_none(changes: dict[str, Any]) -> None:
    assert llama.LlamaSettings.of(llama_config(**changes)) is None


def test_load_returns_none_without_the_single_weights_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(llama_config()), encoding="utf-8")
    (tmp_path / "model.safetensors.index.json").write_text("{}", encoding="utf-8")  # sharded
    assert llama.load(tmp_path) is None
    assert llama.load(tmp_path / "missing") is None


def test_load_returns_none_for_a_variant(tmp_path: Path) -> None:
    tiny_llama(tmp_path, tie_word_embeddings=False)
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    config["hidden_act"] = "gelu"
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert llama.load(tmp_path) is None
