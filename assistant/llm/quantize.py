"""4-bit weights for CPU decoding: the language model's linear layers as int4 groups.

Decoding one token reads every weight once, so on a CPU its speed is set by how many bytes the
weights take: float32 reads 4 bytes per weight, a 4-bit group quantization about 0.6. The bundled
model ships as a Q4_1 GGUF file (groups of 32 weights, each `code * scale + minimum` with a 4-bit
code), which loads as float32; `quantize_linears` packs it back into 4-bit groups of the same size
for torch's int4 CPU kernel. For a Q4_1 group whose codes span 0..15 the codes come back exactly;
scales and minimums are rounded to bfloat16, the kernel's type, and a layer's input is rounded to
bfloat16 before its matrix product (llama.cpp rounds it to 8-bit integers), while everything
between the products (norms, attention, residuals) stays float32.

The prompt's pass multiplies a whole matrix of rows at once, where the 4-bit kernel is often no
faster than float32. For it a layer can keep its weights as 8-bit integers with one scale per output
(`prompt_products="int8"`), and the prompt's rows are rounded to 8-bit integers with one scale per
row, the few input channels with the largest magnitudes kept apart in float32 (the decomposition of
LLM.int8(), Dettmers et al. 2022: a handful of channels hold the outliers that would otherwise
coarsen every row's scale); or keep its float32 weights (`prompt_products="float32"`); or multiply
the 4-bit codes themselves by the rows rounded to 8 bits per group of 32 in a C kernel of ours
(`prompt_products="int4_native"`, `gemm.py`: AVX2's `vpmaddubsw`). Which one runs is measured on
the CPU at hand (`kernel_plan`): torch's 8-bit integer products are fast only where the CPU
multiplies them natively (AVX512-VNNI), and a reference loop elsewhere. One-token steps keep the
4-bit kernel, and so does the output head, which only ever sees the last row.

`evals/bench/generation.py` measures the speed, `assistant eval qa` the answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import torch
from torch import nn
from torch.nn import functional

from assistant.config import PromptProducts
from assistant.llm import gemm as gemm_layout
from assistant.llm.gemm import Gemm4
from assistant.llm.gemv import Gemv4, GemvWeight, pack

GROUP_SIZE = 32
_LEVELS = 15  # 4-bit codes 0..15
_INT8 = 127  # symmetric 8-bit codes -127..127
# Products of at least this many rows (the prompt's pass) run in 8-bit integers or float32 when the
# layer keeps such weights; fewer (the one-token steps) run on the 4-bit codes.
INT8_MIN_ROWS = 16
# Input channels kept in float32, chosen per product by their largest magnitude over the rows.
OUTLIER_CHANNELS = 8
GEMV_NAMES = ("gemv_codes", "gemv_scales", "gemv_minimums")  # `gemv.pack`'s tensors, in order
GEMM_NAMES = ("gemm_codes", "gemm_scales", "gemm_minimums")  # `gemm.pack`'s tensors, in order


def int4_supported() -> bool:
    """Whether this torch has the int4 CPU kernels."""
    ops = torch.ops.aten
    return hasattr(ops, "_weight_int4pack_mm_for_cpu") and hasattr(
        ops, "_convert_weight_to_int4pack_for_cpu"
    )


def int8_supported() -> bool:
    """Whether this torch has 8-bit integer matrix products on the CPU (not whether they are fast:
    `kernel_plan` measures that)."""
    return hasattr(torch, "_int_mm")


class Int8Rows:
    """The last input rounded to 8-bit rows, shared by a model's layers.

    The query, key and value projections read the same input, as do an MLP's gate and up
    projections: rounding it once saves most of the rounding's cost. The input is held (so its
    identity cannot be reused by another tensor) until the next product or `clear()`.
    """

    def __init__(self, outlier_channels: int = OUTLIER_CHANNELS) -> None:
        self.outlier_channels = outlier_channels
        self._input: torch.Tensor | None = None
        self._rounded: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def clear(self) -> None:
        self._input = self._rounded = None

    def of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(codes [rows, in] int8, row scales [rows, 1], outlier channels [k], their values
        [rows, k]) for the rows of `x` ([..., in] float32); codes are 0 in the outlier channels."""
        if self._input is not x or self._rounded is None:
            self._rounded = self._round(x.reshape(-1, x.shape[-1]))
            self._input = x
        return self._rounded

    def _round(
        self, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        magnitude = rows.abs()
        count = min(self.outlier_channels, rows.shape[1] - 1)
        channels = magnitude.amax(dim=0).topk(count).indices
        outliers = rows[:, channels]
        magnitude.index_fill_(1, channels, 0.0)
        scale = magnitude.amax(dim=1, keepdim=True).clamp_(min=torch.finfo(torch.float32).tiny)
        scale.div_(_INT8)
        codes = torch.div(rows, scale).round_().clamp_(-_INT8, _INT8).to(torch.int8)
        codes.index_fill_(1, channels, 0)
        return codes, scale, channels, outliers


class Int4Linear(nn.Module):
    """A linear layer whose weight is held as 4-bit codes in groups along the input dimension.

    Each group of `group_size` weights is `(code - 8) * scale + zero` (the kernel's convention),
    with `zero = minimum + 8 * scale`, which is the GGUF Q4_1 form `code * scale + minimum`.
    Given an `Int8Rows`, it also keeps the weights as 8-bit codes (`codes8`, one scale per output
    in `scale8`) and multiplies products of `INT8_MIN_ROWS` rows or more with them; with
    `keep_float32`, it multiplies those with the float32 weight instead; given a `Gemm4`, in that
    C kernel on the same 4-bit codes. Given a `Gemv4`, one-row products (decoding steps) run in
    that C kernel on the same codes, with float32 scales.
    """

    packed: torch.Tensor
    scales_and_zeros: torch.Tensor
    codes8: torch.Tensor
    scale8: torch.Tensor
    _gemv_weight: GemvWeight
    _gemm_weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    def __init__(
        self,
        linear: nn.Linear,
        group_size: int = GROUP_SIZE,
        rows: Int8Rows | None = None,
        *,
        keep_float32: bool = False,
        gemv: Gemv4 | None = None,
        gemm: Gemm4 | None = None,
    ) -> None:
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
        state = {
            "packed": torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1),
            "scales_and_zeros": scales_and_zeros.to(torch.bfloat16),
        }
        if gemv is not None and group_size == 32:  # the C kernel's layout (gemv.py)
            state.update(zip(GEMV_NAMES, pack(codes, scale, minimum), strict=True))
        if _gemm_takes(gemm, group_size, out_features, in_features):
            packed = gemm_layout.pack(codes, scale, minimum)
            state.update(zip(GEMM_NAMES, packed, strict=True))
        if rows is not None:
            state["codes8"], state["scale8"] = _int8_per_output(weight)
        self._take(linear, state, group_size, rows, keep_float32=keep_float32, gemv=gemv, gemm=gemm)

    @classmethod
    def restored(
        cls,
        linear: nn.Linear,
        state: dict[str, torch.Tensor],
        group_size: int = GROUP_SIZE,
        rows: Int8Rows | None = None,
        *,
        keep_float32: bool = False,
        gemv: Gemv4 | None = None,
        gemm: Gemm4 | None = None,
    ) -> Int4Linear:
        """The layer `Int4Linear(linear, ...)` would make, from its `state()` kept earlier (on
        the same CPU and torch: the int4 layout is torch's). KeyError when a tensor is missing."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._take(
            linear, state, group_size, rows, keep_float32=keep_float32, gemv=gemv, gemm=gemm
        )
        return layer

    def _take(
        self,
        linear: nn.Linear,
        state: dict[str, torch.Tensor],
        group_size: int,
        rows: Int8Rows | None,
        *,
        keep_float32: bool,
        gemv: Gemv4 | None,
        gemm: Gemm4 | None,
    ) -> None:
        self.register_buffer("packed", state["packed"])
        self.register_buffer("scales_and_zeros", state["scales_and_zeros"])
        self.bias = linear.bias
        self.out_features, self.in_features = linear.weight.shape
        self.group_size = group_size
        self._rows = rows
        self._float32 = linear.weight.detach() if keep_float32 and rows is None else None
        self._gemv = gemv if group_size == 32 else None  # the kernel's layout
        if self._gemv is not None:  # one-row products in the C kernel (gemv.py), these codes
            gemv_weights = [state[name] for name in GEMV_NAMES]
            self._gemv_weight = Gemv4.weight(gemv_weights[0], gemv_weights[1], gemv_weights[2])
        self._gemm = (
            gemm if _gemm_takes(gemm, group_size, self.out_features, self.in_features) else None
        )
        if self._gemm is not None:  # the prompt's products in the C kernel (gemm.py)
            gemm_weights = [state[name] for name in GEMM_NAMES]
            self._gemm_weights = (gemm_weights[0], gemm_weights[1], gemm_weights[2])
        if rows is not None:
            self.register_buffer("codes8", state["codes8"])
            self.register_buffer("scale8", state["scale8"])

    def state(self) -> dict[str, torch.Tensor]:
        """Every tensor this layer computed from its float32 weight (for `Int4Linear.restored`)."""
        state = {"packed": self.packed, "scales_and_zeros": self.scales_and_zeros}
        if self._gemv is not None:
            state.update(zip(GEMV_NAMES, self._gemv_weight.tensors, strict=True))
        if self._gemm is not None:
            state.update(zip(GEMM_NAMES, self._gemm_weights, strict=True))
        if self._rows is not None:
            state["codes8"], state["scale8"] = self.codes8, self.scale8
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if self._gemv is not None and rows.shape[0] == 1 and x.dtype == torch.float32:
            if self._rows is not None:
                self._rows.clear()
            y = self._gemv.multiply(self._gemv_weight, rows[0].contiguous())
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias
        if self._gemm is not None and rows.shape[0] >= INT8_MIN_ROWS and x.dtype == torch.float32:
            y = self._gemm(*self._gemm_weights, rows.contiguous())
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias
        if self._float32 is not None and rows.shape[0] >= INT8_MIN_ROWS:
            return functional.linear(x, self._float32, self.bias)
        if self._rows is not None:
            if rows.shape[0] >= INT8_MIN_ROWS and x.dtype == torch.float32:
                return self._int8_forward(x)
            self._rows.clear()  # a one-token step: let the prompt's last input go
        product: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
            rows.to(torch.bfloat16), self.packed, self.group_size, self.scales_and_zeros
        )
        y = product.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def _int8_forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self._rows is not None
        codes, row_scale, channels, outliers = self._rows.of(x)
        y = torch._int_mm(codes, self.codes8).to(torch.float32)
        y.mul_(row_scale).mul_(self.scale8)
        # The outlier channels, in float32, with the same 8-bit weights.
        y.addmm_(outliers, self.codes8[channels].to(torch.float32) * self.scale8)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def _gemm_takes(gemm: Gemm4 | None, group_size: int, out_features: int, in_features: int) -> bool:
    """Whether the prompt kernel `gemm` (if any) takes a layer of this shape."""
    return (
        gemm is not None
        and group_size == gemm_layout.GROUP
        and Gemm4.takes(out_features, in_features)
    )


def _int8_per_output(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A [out, in] float32 weight as 8-bit codes laid out [in, out] for `torch._int_mm`, and
    one scale per output."""
    scale = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / _INT8
    codes = torch.round(weight / scale[:, None]).clamp(-_INT8, _INT8).to(torch.int8)
    return codes.t().contiguous(), scale


def quantize_linears(
    model: Any,
    group_size: int = GROUP_SIZE,
    *,
    prompt_products: str = "int4",
    gemv: Gemv4 | None = None,
    gemm: Gemm4 | None = None,
    saved: SavedLayers | None = None,
) -> int:
    """Replace every `nn.Linear` of a CPU model (the output head included, untied from the input
    embedding, which stays float32 for lookups) by an `Int4Linear`; returns how many were replaced.
    `prompt_products`: what all but the output head multiply the prompt's rows with: "int4" (the
    4-bit codes), "int4_native" (the 4-bit codes in the C kernel `gemm`, which must be given),
    "int8" (8-bit copies of the weights) or "float32" (the float32 weights kept).
    `gemv`: the C kernel for one-row products (decoding steps), else torch's int4 kernel.
    `saved`: the layers as `saved_layers` kept them for the same model, settings and machine,
    restored instead of computed (KeyError, and the model unchanged, when one is missing).
    A layer whose shape the kernel cannot take stays as it is."""
    if prompt_products not in get_args(PromptProducts):
        allowed = ", ".join(get_args(PromptProducts))
        raise ValueError(f"prompt_products must be one of {allowed}, not {prompt_products!r}")
    if prompt_products == "int4_native" and gemm is None:
        raise ValueError('prompt_products "int4_native" needs the C kernel (gemm)')
    rows = Int8Rows() if prompt_products == "int8" and int8_supported() else None
    gemm = gemm if prompt_products == "int4_native" else None
    keep_float32 = prompt_products == "float32"
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    replacements: list[tuple[nn.Module, str, Int4Linear]] = []
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.Linear):
                continue
            full_name = f"{parent_name}.{name}" if parent_name else name
            settings: dict[str, Any] = {
                "group_size": group_size,
                "rows": None if child is head else rows,
                "keep_float32": keep_float32 and child is not head,
                "gemv": gemv,
                "gemm": None if child is head else gemm,
            }
            if saved is not None:
                if full_name not in saved.names:
                    continue  # it could not be packed when the layers were kept
                state = saved.of(full_name)
                replacements.append((parent, name, Int4Linear.restored(child, state, **settings)))
                continue
            try:
                replacements.append((parent, name, Int4Linear(child, **settings)))
            except (ValueError, RuntimeError):
                continue
    for parent, name, quantized in replacements:
        setattr(parent, name, quantized)
    replaced = len(replacements)
    if not replaced:
        return 0
    # The float32 weights were loaded from a memory-mapped file; while any tensor of the model
    # (the embedding, the norms) still lives in that mapping, the whole file stays mapped and
    # counted in the process's memory. Copies let it go.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, Int4Linear):
                continue  # its float32 weight, if kept, stays in the mapping: it is read as is
            for tensor in [*module.parameters(False), *module.buffers(False)]:
                tensor.data = tensor.data.clone()
    config: Any = getattr(model, "config", None)
    if getattr(config, "tie_word_embeddings", False):
        # The head no longer shares the embedding's tensor; saving or re-tying must not follow.
        config.tie_word_embeddings = False
    return replaced


class SavedLayers:
    """Packed layers kept on disk by `save_layers` (a safetensors file), to restore with
    `quantize_linears(..., saved=...)` instead of packing the float32 weights again."""

    def __init__(self, tensors: dict[str, torch.Tensor], names: list[str]) -> None:
        self.names = frozenset(names)
        self._layers: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            layer, _, part = key.rpartition(".")
            self._layers.setdefault(layer, {})[part] = tensor

    def of(self, name: str) -> dict[str, torch.Tensor]:
        state = self._layers.get(name, {})
        if "packed" not in state:
            raise KeyError(name)
        return state

    @classmethod
    def read(cls, path: Path) -> SavedLayers:
        """The layers in `path`; OSError or ValueError when it is missing or damaged."""
        import json

        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except SafetensorError as error:
            raise ValueError(f"{path} is damaged: {error}") from error
        names = json.loads(metadata.get("layers", "null"))
        if not isinstance(names, list):
            raise ValueError(f"{path} does not list its layers")
        return cls(tensors, [str(name) for name in names])


def save_layers(model: Any, path: Path) -> None:
    """Keep every `Int4Linear` of `model` in `path` (written whole or not at all)."""
    import json
    import os
    import tempfile

    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    names: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, Int4Linear):
            names.append(name)
            for key, tensor in module.state().items():
                tensors[f"{name}.{key}"] = tensor.contiguous()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata={"layers": json.dumps(names)})
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
