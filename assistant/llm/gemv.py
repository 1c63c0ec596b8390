"""A decoding step's 4-bit product in a small C kernel (`kernels/gemv4.c`, AVX2 and FMA).

torch's int4 CPU kernel is built for AVX-512; on an AVX2-only CPU a one-row product over 4-bit
codes ran slower than float32's over four times the bytes, which left decoding bound by the kernel
rather than by memory. `Gemv4` multiplies one float32 row by 4-bit codes laid out for AVX2 (two
codes a byte, the GGUF Q4_1 form `code * scale + minimum` per group of 32 inputs, scales and
minimums in float32), the row in float32 or (`eight_bit`) rounded to 8-bit integers per group of
32, as llama.cpp rounds it, for `vpmaddubsw`. Whether it runs is measured (`kernel_plan`), like
every other fast path.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import NamedTuple

import torch

from assistant.llm import native

GROUP = 32


class GemvWeight(NamedTuple):
    """A packed weight and its tensors' addresses (the tensors kept alive with them)."""

    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    codes: int
    scale: int
    minimum: int


class Gemv4:
    """The kernel, built into the model cache on first use. `load` returns None when it cannot be
    built or the CPU lacks AVX2 and FMA."""

    def __init__(self, library: ctypes.CDLL, *, eight_bit: bool = False) -> None:
        pointer, integer = ctypes.c_void_p, ctypes.c_int
        self.eight_bit = eight_bit
        self._multiply = library.assistant_gemv4_q8 if eight_bit else library.assistant_gemv4
        self._multiply.argtypes = [pointer] * 5 + [integer] * 2
        self._multiply.restype = integer

    @classmethod
    def load(cls, cache: Path, *, eight_bit: bool = False) -> Gemv4 | None:
        """`eight_bit`: the input rounded to 8-bit integers per group of 32 (`vpmaddubsw`)."""
        library = native.load("gemv4", cache)
        if library is None or not library.assistant_gemv4_supported():
            return None
        return cls(library, eight_bit=eight_bit)

    @staticmethod
    def weight(codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor) -> GemvWeight:
        """`pack`'s tensors as `multiply` takes them (their addresses read once: a decoding step
        makes ~200 products, whose Python side costs as much as a small one's arithmetic)."""
        return GemvWeight(
            (codes, scale, minimum), codes.data_ptr(), scale.data_ptr(), minimum.data_ptr()
        )

    def multiply(self, weight: GemvWeight, x: torch.Tensor) -> torch.Tensor:
        """`x` ([in] float32, contiguous) times `weight`: [out] float32."""
        rows = weight.tensors[0].shape[0]
        out = torch.empty(rows, dtype=torch.float32)
        status = self._multiply(
            weight.codes,
            weight.scale,
            weight.minimum,
            x.data_ptr(),
            out.data_ptr(),
            rows,
            x.shape[0],
        )
        if status:
            raise MemoryError("the 4-bit product kernel ran out of memory")
        return out


def pack(
    codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel's layout of [out, in] codes 0..15 with [out, in / 32] scales and minimums:
    ([out, in / 2] uint8, two codes a byte, input j and j + 16 of each group in one byte;
    the scales and minimums as contiguous float32)."""
    out_features, in_features = codes.shape
    groups = codes.to(torch.uint8).reshape(out_features, in_features // GROUP, GROUP)
    packed = groups[..., : GROUP // 2] | (groups[..., GROUP // 2 :] << 4)
    return (
        packed.reshape(out_features, in_features // 2).contiguous(),
        scale.to(torch.float32).contiguous(),
        minimum.to(torch.float32).contiguous(),
    )
