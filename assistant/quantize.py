"""4-bit weights for CPU decoding: the language model's linear layers as int4 groups.

Decoding one token reads every weight once, so on a CPU its speed is set by how many bytes the
weights take: float32 reads 4 bytes per weight, a 4-bit group quantization about 0.6. The bundled
model ships as a Q4_1 GGUF file (groups of 32 weights, each `code * scale + minimum` with a 4-bit
code), which loads as float32; `quantize_linears` packs it back into 4-bit groups of the same size
for torch's int4 CPU kernel. For a Q4_1 group whose codes span 0..15 the codes come back exactly;
scales and minimums are rounded to bfloat16, the kernel's type, and a layer's input is rounded to
bfloat16 before its matrix product (llama.cpp rounds it to 8-bit integers), while everything
between the products (norms, attention, residuals) stays float32.

`evals/bench/generation.py` measures the speed, `assistant eval qa` the answers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

GROUP_SIZE = 32
_LEVELS = 15  # 4-bit codes 0..15


def int4_supported() -> bool:
    """Whether this torch has the int4 CPU kernels."""
    ops = torch.ops.aten
    return hasattr(ops, "_weight_int4pack_mm_for_cpu") and hasattr(
        ops, "_convert_weight_to_int4pack_for_cpu"
    )


class Int4Linear(nn.Module):
    """A linear layer whose weight is held as 4-bit codes in groups along the input dimension.

    Each group of `group_size` weights is `(code - 8) * scale + zero` (the kernel's convention),
    with `zero = minimum + 8 * scale`, which is the GGUF Q4_1 form `code * scale + minimum`.
    """

    def __init__(self, linear: nn.Linear, group_size: int = GROUP_SIZE) -> None:
        super().__init__()
        weight = linear.weight.detach().to(torch.float32)
        out_features, in_features = weight.shape
        if in_features % group_size:
            raise ValueError(
                f"{in_features} input features do not split into groups of {group_size}"
            )
        groups = weight.reshape(out_features, in_features // group_size, group_size)
        minimum = groups.amin(dim=-1)
        scale = ((groups.amax(dim=-1) - minimum) / _LEVELS).clamp(
            min=torch.finfo(torch.float32).tiny
        )
        codes = torch.round((groups - minimum[..., None]) / scale[..., None]).clamp(0, _LEVELS)
        codes = codes.to(torch.int32).reshape(out_features, in_features)
        zero = minimum + 8 * scale
        # The kernel wants [in_features / group_size, out_features, 2] (scale, zero) in bfloat16.
        scales_and_zeros = torch.stack([scale.t(), zero.t()], dim=-1).contiguous()
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1))
        self.register_buffer("scales_and_zeros", scales_and_zeros.to(torch.bfloat16))
        self.bias = linear.bias
        self.in_features = in_features
        self.out_features = out_features
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        product: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
            rows, self.packed, self.group_size, self.scales_and_zeros
        )
        y = product.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def dequantized(self) -> torch.Tensor:
        """The weight these codes stand for, as the kernel computes it (in bfloat16 precision)."""
        identity = torch.eye(self.in_features, dtype=torch.bfloat16)
        columns: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
            identity, self.packed, self.group_size, self.scales_and_zeros
        )
        return columns.to(torch.float32).t().contiguous()


def quantize_linears(model: Any, group_size: int = GROUP_SIZE) -> int:
    """Replace every `nn.Linear` of a CPU model (the output head included, untied from the input
    embedding, which stays float32 for lookups) by an `Int4Linear`; returns how many were replaced.
    A layer whose shape the kernel cannot take stays as it is."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.Linear):
                continue
            try:
                quantized = Int4Linear(child, group_size)
            except (ValueError, RuntimeError):
                continue
            setattr(parent, name, quantized)
            replaced += 1
    if not replaced:
        return 0
    # The float32 weights were loaded from a memory-mapped file; while any tensor of the model
    # (the embedding, the norms) still lives in that mapping, the whole file stays mapped and
    # counted in the process's memory. Copies let it go (~400 MB here).
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, Int4Linear):
                continue
            for tensor in [*module.parameters(False), *module.buffers(False)]:
                tensor.data = tensor.data.clone()
    config: Any = getattr(model, "config", None)
    if getattr(config, "tie_word_embeddings", False):
        # The head no longer shares the embedding's tensor; saving or re-tying must not follow.
        config.tie_word_embeddings = False
    return replaced
