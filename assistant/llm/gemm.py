"""A prompt's 4-bit products in a small C kernel (`kernels/gemm4.c`, AVX2: `vpmaddubsw`).

On a CPU without AVX512-VNNI, torch's 8-bit products run a reference loop and its 4-bit kernel is
slower than float32, so the prompt's pass ran in float32 at about the CPU's float32 peak. `Gemm4`
multiplies the prompt's rows, rounded to 8-bit integers per row and group of 32 inputs (GGUF
Q8_1's form), by the layer's own 4-bit codes (GGUF Q4_1's `code * scale + minimum`, exact), in
8-bit integer products summed in 16 and 32 bits. Whether it runs is measured (`kernel_plan`), like
every other fast path.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from assistant.llm import native

GROUP = 32
BLOCK = 16  # outputs per block of the kernel's layout


class Gemm4:
    """The kernel, built into the model cache on first use. `load` returns None when it cannot be
    built or the CPU lacks AVX2 and FMA."""

    def __init__(self, library: ctypes.CDLL) -> None:
        pointer, integer = ctypes.c_void_p, ctypes.c_int
        self._multiply = library.assistant_gemm4
        self._multiply.argtypes = [pointer] * 5 + [integer] * 4
        self._multiply.restype = integer

    @classmethod
    def load(cls, cache: Path) -> Gemm4 | None:
        # OpenMP: its threads are torch's own (torch loads libgomp first; the process keeps one)
        library = native.load("gemm4", cache, flags=("-fopenmp",))
        if library is None or not library.assistant_gemm4_supported():
            return None
        return cls(library)

    @staticmethod
    def takes(out_features: int, in_features: int) -> bool:
        """Whether the kernel's layout fits a weight of this shape."""
        return out_features % BLOCK == 0 and in_features % GROUP == 0

    def __call__(
        self, codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        """`x` ([rows, in] float32, contiguous) times the weight that `pack` made: [rows, out]."""
        rows, in_features = x.shape
        out_features = scale.shape[0] * BLOCK
        out = torch.empty(rows, out_features, dtype=torch.float32)
        status = self._multiply(
            codes.data_ptr(),
            scale.data_ptr(),
            minimum.data_ptr(),
            x.data_ptr(),
            out.data_ptr(),
            rows,
            out_features,
            in_features,
            torch.get_num_threads(),
        )
        if status == 1:
            raise MemoryError("the 4-bit prompt product kernel ran out of memory")
        if status:
            raise ValueError(f"the 4-bit prompt product kernel cannot take {tuple(x.shape)}")
        return out


def pack(
    codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel's layout of [out, in] codes 0..15 with [out, in / 32] scales and minimums:
    codes as [out / 16, in / 4, 16, 4] uint8 (each block of 16 outputs, 4 inputs at a time), the
    scales and minimums as [out / 16, in / 32, 16] float32."""
    out_features, in_features = codes.shape
    blocks, groups = out_features // BLOCK, in_features // GROUP
    packed = codes.to(torch.uint8).reshape(blocks, BLOCK, in_features // 4, 4).permute(0, 2, 1, 3)

    def per_block(values: torch.Tensor) -> torch.Tensor:
        return values.to(torch.float32).reshape(blocks, BLOCK, groups).transpose(1, 2).contiguous()

    return packed.contiguous(), per_block(scale), per_block(minimum)
