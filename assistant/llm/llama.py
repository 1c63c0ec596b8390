"""The Llama architecture in plain torch: the bundled model's forward pass without transformers.

A one-shot `assistant ask` waits for every import before its first piece, and transformers'
model code is the largest: importing `LlamaForCausalLM` pulls in torch's compiler and distributed
stacks and takes twice as long as torch itself (evals/README.md, Cold start). The bundled model
(SmolLM2) and most small chat models are plain Llamas: token embedding, then per layer an RMS
norm, grouped-query attention with rotary positions, an RMS norm and a SiLU-gated MLP, then a
final norm and the output head. That fits in this file, so for such a model the torch engine
runs it here and never imports transformers; anything else (other architectures, rope scaling,
biases, sharded weights) loads through transformers as before (`weights.load_folder`).

Modules and parameters carry transformers' names (`model.layers.0.self_attn.q_proj`, ...), so
the dense copy's `model.safetensors` loads as it is, and `quantize`, `kernel_plan` and the
attention kernel treat this model as they treat transformers' one. The arithmetic follows
transformers' `modeling_llama` step by step (the norms in float32, the rotary angles as
position x inverse frequency), so the logits agree to float rounding and greedy decoding gives
the same tokens (tests/e2e/test_llm_llama.py). The key/value cache grows in place
(`LayerCache`, the same policy as `kv_cache.GrowingLayer`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional

from assistant.llm.attention import PromptAttention, one_token_attention

if TYPE_CHECKING:
    from assistant.llm.step import StepKernel

WEIGHTS_FILE = "model.safetensors"
SPARE_POSITIONS = 512  # room a layer's cache keeps after its filled positions


def grown_capacity(needed: int) -> int:
    """Positions a key/value buffer gets when `needed` no longer fit: at least
    `SPARE_POSITIONS` more, or half again (here and in `kv_cache.GrowingLayer`)."""
    return needed + max(SPARE_POSITIONS, needed // 2)


@dataclass
class LlamaSettings:
    """The shapes of a plain Llama, read from its `config.json` (not frozen: `quantize` unties
    the head by setting `tie_word_embeddings`, as it does on transformers' config)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    model_type: str = "llama"

    @classmethod
    def of(cls, config: dict[str, Any]) -> LlamaSettings | None:
        """The settings of a model this file runs exactly, else None (transformers runs it)."""
        rope = config.get("rope_parameters") or {}
        if config.get("rope_scaling"):
            return None
        theta = rope.get("rope_theta", config.get("rope_theta"))
        plain = (
            config.get("model_type") == "llama"
            and config.get("architectures", ["LlamaForCausalLM"]) == ["LlamaForCausalLM"]
            and rope.get("rope_type", "default") == "default"
            and config.get("hidden_act", "silu") == "silu"
            and not config.get("attention_bias", False)
            and not config.get("mlp_bias", False)
            and config.get("pretraining_tp", 1) == 1
            and isinstance(theta, (int, float))
        )
        if not plain:
            return None
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return cls(
            hidden_size=hidden,
            intermediate_size=int(config["intermediate_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            vocab_size=int(config["vocab_size"]),
            max_position_embeddings=int(config.get("max_position_embeddings") or 2048),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta or 0),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        )


class LayerCache:
    """One layer's keys and values, in buffers with spare room so a step writes only its own."""

    def __init__(self) -> None:
        self.length = 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None

    def update(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (batch, kv_heads, new, dim) keys and values; all of them so far, as views."""
        needed = self.length + keys.shape[-2]
        buffer_keys, buffer_values = self._room(needed, keys)
        buffer_keys[..., self.length : needed, :] = keys
        buffer_values[..., self.length : needed, :] = values
        self.length = needed
        return buffer_keys[..., :needed, :], buffer_values[..., :needed, :]

    def reserve(self, needed: int, kv_heads: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole (1, kv_heads, capacity, dim) float32 key and value buffers, with room for
        `needed` positions (for `step.StepKernel`, which writes them itself)."""
        if self._keys is not None and self._values is not None and needed <= self._keys.shape[-2]:
            return self._keys, self._values
        return self._room(needed, torch.empty(1, kv_heads, 0, dim))

    def _room(self, needed: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The buffers, grown (the filled positions copied) if `needed` positions do not fit."""
        if self._keys is None or self._values is None or needed > self._keys.shape[-2]:
            shape = (*like.shape[:-2], grown_capacity(needed), like.shape[-1])
            grown_keys, grown_values = like.new_empty(shape), like.new_empty(shape)
            if self._keys is not None and self._values is not None and self.length:
                grown_keys[..., : self.length, :] = self._keys[..., : self.length, :]
                grown_values[..., : self.length, :] = self._values[..., : self.length, :]
            self._keys, self._values = grown_keys, grown_values
        return self._keys, self._values


class Cache:
    """The key/value cache of a whole model: one `LayerCache` per layer."""

    def __init__(self, layers: int) -> None:
        self.layers = [LayerCache() for _ in range(layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0


def _empty(*shape: int) -> nn.Parameter:
    """A weight to be assigned from the file: no memory, no initialisation. (torch's modules
    initialise their weights even on the meta device, and doing so there imports torch's
    compiler stack, seconds of a one-shot command's start.)"""
    return nn.Parameter(torch.empty(*shape, device="meta"), requires_grad=False)


def _linear(inputs: int, outputs: int) -> nn.Linear:
    """An `nn.Linear` without bias whose weight comes from the file (`_empty`)."""
    layer = nn.Linear.__new__(nn.Linear)
    nn.Module.__init__(layer)
    layer.in_features, layer.out_features = inputs, outputs
    layer.weight = _empty(outputs, inputs)
    layer.register_parameter("bias", None)
    return layer


class Embedding(nn.Module):
    """The token embedding (`nn.Embedding`'s lookup, its weight from the file)."""

    def __init__(self, vocab: int, size: int) -> None:
        super().__init__()
        self.weight = _empty(vocab, size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return functional.embedding(ids, self.weight)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = _empty(size)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32)
        variance = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        return self.weight * x.to(dtype)


class Attention(nn.Module):
    def __init__(self, settings: LlamaSettings) -> None:
        super().__init__()
        heads, kv_heads, dim = (
            settings.num_attention_heads,
            settings.num_key_value_heads,
            settings.head_dim,
        )
        self.heads, self.kv_heads, self.dim = heads, kv_heads, dim
        self.scaling = dim**-0.5
        self.q_proj = _linear(settings.hidden_size, heads * dim)
        self.k_proj = _linear(settings.hidden_size, kv_heads * dim)
        self.v_proj = _linear(settings.hidden_size, kv_heads * dim)
        self.o_proj = _linear(heads * dim, settings.hidden_size)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cache: LayerCache,
        prompt_kernel: PromptAttention | None,
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        query = self.q_proj(x).view(batch, length, -1, self.dim).transpose(1, 2)
        key = self.k_proj(x).view(batch, length, -1, self.dim).transpose(1, 2)
        value = self.v_proj(x).view(batch, length, -1, self.dim).transpose(1, 2)
        cos, sin = rotary
        query, key = _rotate(query, cos, sin), _rotate(key, cos, sin)
        past = cache.length
        key, value = cache.update(key, value)
        out = self._attend(query, key, value, past, prompt_kernel)
        projected: torch.Tensor = self.o_proj(out.reshape(batch, length, -1))
        return projected

    def _attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        past: int,
        prompt_kernel: PromptAttention | None,
    ) -> torch.Tensor:
        """(batch, heads, length, dim) queries in; (batch, length, heads, dim) out."""
        batch, _, length, _ = query.shape
        if length == 1:
            return one_token_attention(query, key, value, None, self.scaling)
        if (
            prompt_kernel is not None
            and past == 0
            and batch == 1
            and query.dtype == torch.float32
            and query.device.type == "cpu"
        ):
            out = prompt_kernel(query, key, value, self.scaling)
            if out is not None:
                return out
        mask = None
        if past:  # a later chunk of a prompt: each query sees the cache and its own past
            rows = torch.arange(length, device=query.device)[:, None] + past
            mask = torch.arange(key.shape[2], device=query.device)[None, :] <= rows
        out = functional.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=mask,
            is_causal=mask is None,
            scale=self.scaling,
            enable_gqa=self.heads != self.kv_heads,
        )
        return out.transpose(1, 2)


class MLP(nn.Module):
    def __init__(self, settings: LlamaSettings) -> None:
        super().__init__()
        self.gate_proj = _linear(settings.hidden_size, settings.intermediate_size)
        self.up_proj = _linear(settings.hidden_size, settings.intermediate_size)
        self.down_proj = _linear(settings.intermediate_size, settings.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        down: torch.Tensor = self.down_proj(functional.silu(self.gate_proj(x)) * self.up_proj(x))
        return down


class DecoderLayer(nn.Module):
    def __init__(self, settings: LlamaSettings) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(settings.hidden_size, settings.rms_norm_eps)
        self.self_attn = Attention(settings)
        self.post_attention_layernorm = RMSNorm(settings.hidden_size, settings.rms_norm_eps)
        self.mlp = MLP(settings)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cache: LayerCache,
        prompt_kernel: PromptAttention | None,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rotary, cache, prompt_kernel)
        out: torch.Tensor = x + self.mlp(self.post_attention_layernorm(x))
        return out


class Body(nn.Module):
    def __init__(self, settings: LlamaSettings) -> None:
        super().__init__()
        self.embed_tokens = Embedding(settings.vocab_size, settings.hidden_size)
        self.layers = nn.ModuleList(
            DecoderLayer(settings) for _ in range(settings.num_hidden_layers)
        )
        self.norm = RMSNorm(settings.hidden_size, settings.rms_norm_eps)


@dataclass
class Output:
    """What the engine reads of a forward pass (transformers' outputs have `.logits` too)."""

    logits: torch.Tensor


class LlamaForCausalLM(nn.Module):
    """A plain Llama chat model. `forward(input_ids, cache)` appends to `cache` and returns the
    logits of the last `logits_to_keep` positions."""

    def __init__(self, settings: LlamaSettings, generation: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = settings
        self.generation_config = _Generation(generation or {})
        self.model = Body(settings)
        self.lm_head = _linear(settings.hidden_size, settings.vocab_size)
        self.prompt_kernel: PromptAttention | None = None
        # A one-token step of the whole model in C (`step.StepKernel`), when the engine runs it.
        self.step_kernel: StepKernel | None = None
        dim = settings.head_dim
        self._inverse_frequency = 1.0 / (
            settings.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)
        )

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def new_cache(self) -> Cache:
        return Cache(self.config.num_hidden_layers)

    def forward(
        self, input_ids: torch.Tensor, cache: Cache | None = None, logits_to_keep: int = 0
    ) -> Output:
        cache = cache if cache is not None else self.new_cache()
        if self.step_kernel is not None and input_ids.shape == (1, 1) and cache.length:
            return Output(self.step_kernel.step(int(input_ids[0, 0]), cache)[:, None, :])
        x = self.model.embed_tokens(input_ids)
        past, length = cache.length, input_ids.shape[1]
        rotary = self._rotary(past, length, x)
        for layer, layer_cache in zip(self.model.layers, cache.layers, strict=True):
            x = layer(x, rotary, layer_cache, self.prompt_kernel)
        x = self.model.norm(x)
        if logits_to_keep:
            x = x[:, -logits_to_keep:, :]
        return Output(self.lm_head(x))

    def _rotary(self, past: int, length: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of the rotary angles of positions past..past + length - 1, (1, 1, length,
        dim), as transformers computes them (in float32, then in the activations' dtype)."""
        inverse = self._inverse_frequency.to(x.device)
        positions = torch.arange(past, past + length, device=x.device, dtype=torch.float32)
        angles = positions[:, None] * inverse[None, :]
        both = torch.cat((angles, angles), dim=-1)
        return both.cos().to(x.dtype)[None, None], both.sin().to(x.dtype)[None, None]


class _Generation:
    """The few generation settings the engine reads (`eos_token_id`)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.eos_token_id = settings.get("eos_token_id")


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos) + (rotated * sin)


def load(folder: Path, dtype: torch.dtype = torch.float32) -> LlamaForCausalLM | None:
    """The model in `folder` (transformers' layout: `config.json`, one `model.safetensors`) if it
    is a plain Llama this file runs, else None. Weights that do not match raise ValueError."""
    from safetensors.torch import load_file

    config_file, weights_file = folder / "config.json", folder / WEIGHTS_FILE
    if not (config_file.is_file() and weights_file.is_file()):
        return None
    settings = LlamaSettings.of(json.loads(config_file.read_text(encoding="utf-8")))
    if settings is None:
        return None
    generation_file = folder / "generation_config.json"
    generation = (
        json.loads(generation_file.read_text(encoding="utf-8")) if generation_file.is_file() else {}
    )
    model = LlamaForCausalLM(settings, generation)  # empty: every tensor comes from the file
    state = load_file(str(weights_file))
    if settings.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if settings.tie_word_embeddings:
        missing = [name for name in missing if name != "lm_head.weight"]
    if missing or unexpected:
        raise ValueError(
            f"{weights_file} does not hold a Llama's weights "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    if settings.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.to(dtype)
