"""Tests for assistant.llm.quantize (4-bit weights)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from assistant.llm.quantize import (
    GEMM_NAMES,
    GEMV_NAMES,
    GROUP_SIZE,
    INT8_MIN_ROWS,
    Int4Linear,
    Int8Rows,
    int4_supported,
    int8_supported,
    quantize_linears,
)
from assistant.llm.weights import dense_cache_dir, four_bit_gguf
from assistant.models import BUNDLED_LANGUAGE_MODEL, ModelSource, resolve_language_model

pytestmark = pytest.mark.skipif(not int4_supported(), reason="this torch has no int4 CPU kernels")


def dequantized(layer: Int4Linear) -> torch.Tensor:
    """The weight a layer's codes stand for, as the kernel computes it (in bfloat16 precision)."""
    identity = torch.eye(layer.in_features, dtype=torch.bfloat16)
    columns: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
        identity, layer.packed, layer.group_size, layer.scales_and_zeros
    )
    return columns.to(torch.float32).t().contiguous()


def q4_1_linear(out_features: int, in_features: int, seed: int = 0) -> nn.Linear:
    """A linear layer whose weights are exactly GGUF Q4_1 groups: code * scale + minimum, with
    codes 0..15 and every group using both ends (so the codes can be recovered)."""
    generator = torch.Generator().manual_seed(seed)
    groups = in_features // GROUP_SIZE
    codes = torch.randint(0, 16, (out_features, groups, GROUP_SIZE), generator=generator)
    codes[..., 0], codes[..., 1] = 0, 15
    # Scales and minimums that bfloat16 holds exactly, so the reconstruction can be exact.
    scale = torch.randint(1, 64, (out_features, groups, 1), generator=generator) / 2048
    minimum = -torch.randint(0, 64, (out_features, groups, 1), generator=generator) / 256
    layer = nn.Linear(in_features, out_features, bias=False)
    with torch.no_grad():
        layer.weight.copy_((codes * scale + minimum).reshape(out_features, in_features))
    return layer


def test_q4_1_groups_are_recovered_exactly() -> None:
    layer = q4_1_linear(48, 96)
    quantized = Int4Linear(layer)
    # The kernel returns bfloat16, so the weights come back exactly up to that rounding.
    assert torch.equal(dequantized(quantized), layer.weight.detach().to(torch.bfloat16).float())
    assert quantized.packed.numel() == 48 * 96 // 2  # two 4-bit codes per byte


def test_forward_is_the_product_with_a_bfloat16_input() -> None:
    layer = q4_1_linear(64, 128, seed=1)
    layer.bias = nn.Parameter(torch.linspace(-1, 1, 64))
    quantized = Int4Linear(layer)
    x = torch.randn(3, 5, 128, generator=torch.Generator().manual_seed(2))
    expected = nn.functional.linear(x.to(torch.bfloat16).float(), layer.weight, layer.bias)
    y = quantized(x)
    assert y.shape == (3, 5, 64) and y.dtype == torch.float32
    assert torch.allclose(y, expected, atol=0.05, rtol=0.02)
    assert not torch.allclose(y, torch.zeros_like(y))


def test_arbitrary_weights_are_close_but_not_exact() -> None:
    layer = nn.Linear(64, 32, bias=False)
    quantized = Int4Linear(layer)
    error = (dequantized(quantized) - layer.weight.detach()).abs()
    group_range = layer.weight.detach().reshape(32, 2, GROUP_SIZE)
    step = (group_range.amax(-1) - group_range.amin(-1)) / 15  # one 4-bit step per group
    assert error.max() > 0
    assert (error.reshape(32, 2, GROUP_SIZE) <= step[..., None] * 0.51 + 1e-2).all()


def test_layers_that_do_not_split_into_groups_stay_dense() -> None:
    with pytest.raises(ValueError, match="groups of 32"):
        Int4Linear(nn.Linear(40, 8))
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(40, 8), nn.Linear(8, 64))
    model.config = SimpleNamespace(tie_word_embeddings=True)  # type: ignore[assignment]
    assert quantize_linears(model) == 1
    assert isinstance(model[0], Int4Linear)
    assert isinstance(model[2], nn.Linear) and isinstance(model[3], nn.Linear)
    assert model.config.tie_word_embeddings is False


needs_int8 = pytest.mark.skipif(not int8_supported(), reason="this torch has no torch._int_mm")


def test_rows_round_to_8_bits_with_the_outlier_channels_apart() -> None:
    rows = torch.randn(20, 64, generator=torch.Generator().manual_seed(3))
    rows[:, 5] *= 500  # one channel far larger than the rest, as in a transformer's activations
    codes, scale, channels, outliers = Int8Rows(outlier_channels=2)._round(rows)
    assert codes.dtype == torch.int8 and codes.abs().max() <= 127
    assert 5 in channels.tolist()
    assert (codes[:, channels] == 0).all()
    assert torch.equal(outliers, rows[:, channels])
    rebuilt = codes.float() * scale
    rebuilt[:, channels] = outliers
    # Half a step of each row's own scale, which the outlier channel does not inflate.
    assert ((rebuilt - rows).abs() <= scale * 0.5 + 1e-6).all()
    assert scale.max() < 5 / 127  # the ordinary channels set it: |N(0, 1)| < 5


def test_rows_are_rounded_once_for_the_layers_that_share_an_input() -> None:
    rounding = Int8Rows()
    x = torch.randn(INT8_MIN_ROWS, 64)
    first = rounding.of(x)
    assert rounding.of(x) is first
    other = rounding.of(x.clone())
    assert other is not first and torch.equal(other[0], first[0])
    rounding.clear()
    assert rounding.of(x) is not first


@needs_int8
def test_prompt_rows_multiply_in_8_bits_and_steps_in_4_bits() -> None:
    layer = q4_1_linear(64, 128, seed=4)
    layer.bias = nn.Parameter(torch.linspace(-1, 1, 64))
    four_bit_only = Int4Linear(layer)
    both = Int4Linear(layer, rows=Int8Rows())
    assert both.codes8.dtype == torch.int8 and both.codes8.shape == (128, 64)
    generator = torch.Generator().manual_seed(5)
    prompt = torch.randn(1, INT8_MIN_ROWS + 3, 128, generator=generator)
    prompt[..., 7] *= 200
    step = torch.randn(1, 1, 128, generator=generator)
    exact = nn.functional.linear(prompt, layer.weight, layer.bias)
    y = both(prompt)
    assert y.shape == exact.shape
    assert not torch.equal(y, four_bit_only(prompt))  # the prompt took the 8-bit path
    assert (y - exact).abs().max() < 0.02 * exact.abs().max()
    assert torch.equal(both(step), four_bit_only(step))  # a one-token step: the 4-bit kernel


@needs_int8
def test_prompt_products_on_the_4_bit_codes_keep_no_8_bit_copy() -> None:
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 32))
    assert quantize_linears(model, prompt_products="int4") == 2
    assert not any(name.endswith("codes8") for name, _ in model.named_buffers())
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 32))
    x = torch.randn(INT8_MIN_ROWS, 64)
    with torch.no_grad():
        exact = model(x)
    quantize_linears(model, prompt_products="int8")
    assert sum(name.endswith("codes8") for name, _ in model.named_buffers()) == 2
    first, second = model[0], model[1]
    assert isinstance(first, Int4Linear) and first._rows is second._rows  # one shared rounding
    with torch.no_grad():
        y = model(x)
    assert (y - exact).abs().max() < 0.02 * exact.abs().max()


def test_prompt_products_in_float32_use_the_kept_weight_and_steps_the_4_bit_codes() -> None:
    layer = q4_1_linear(64, 128, seed=8)
    layer.bias = nn.Parameter(torch.linspace(-1, 1, 64))
    four_bit_only = Int4Linear(layer)
    with_float32 = Int4Linear(layer, keep_float32=True)
    generator = torch.Generator().manual_seed(9)
    prompt = torch.randn(1, INT8_MIN_ROWS, 128, generator=generator)
    step = torch.randn(1, 1, 128, generator=generator)
    with torch.no_grad():
        assert torch.equal(
            with_float32(prompt), nn.functional.linear(prompt, layer.weight, layer.bias)
        )
        assert torch.equal(with_float32(step), four_bit_only(step))
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 32))
    with pytest.raises(ValueError, match="prompt_products"):
        quantize_linears(model, prompt_products="int2")


def test_four_bit_gguf_is_read_once_and_noted(tmp_path: Path) -> None:
    source = resolve_language_model(BUNDLED_LANGUAGE_MODEL)
    assert four_bit_gguf(source, tmp_path) is True  # SmolLM2 ships as Q4_1
    dense = dense_cache_dir(source, tmp_path)
    note = dense.with_name(f"{dense.name}.json")
    assert json.loads(note.read_text()) == {"four_bit": True}
    note.write_text(json.dumps({"four_bit": False}))  # the note is what later loads trust
    assert four_bit_gguf(source, tmp_path) is False
    note.write_text("{broken")  # an unreadable note is replaced by reading the file again
    assert four_bit_gguf(source, tmp_path) is True


def test_a_float_gguf_is_not_four_bit(tmp_path: Path) -> None:
    import numpy as np
    from gguf import GGUFWriter

    path = tmp_path / "tiny.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_tensor("blk.0.ffn_up.weight", np.ones((64, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    source = ModelSource(str(path), str(tmp_path), path.name)
    assert four_bit_gguf(source, tmp_path / "models") is False


def test_one_row_products_in_the_c_kernel_match_the_codes(tmp_path: Path) -> None:
    """gemv.py's kernel computes the same product as the 4-bit codes with float32 scales."""
    from assistant.llm.gemv import Gemv4

    kernel = Gemv4.load(tmp_path / "kernels")
    if kernel is None:
        pytest.skip("the 4-bit step kernel needs a C compiler and a CPU with AVX2 and FMA")
    layer = q4_1_linear(96, 128, seed=11)
    layer.bias = nn.Parameter(torch.linspace(-1, 1, 96))
    native = Int4Linear(layer, gemv=kernel)
    step = torch.randn(1, 1, 128, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        exact = nn.functional.linear(step, layer.weight, layer.bias)  # Q4_1 values: exact codes
        assert torch.allclose(native(step), exact, atol=1e-4, rtol=1e-4)
        prompt = torch.randn(1, INT8_MIN_ROWS, 128)
        assert torch.equal(native(prompt), Int4Linear(layer)(prompt))  # rows: torch's kernel


def test_one_row_products_with_8_bit_rows_in_the_c_kernel(tmp_path: Path) -> None:
    """gemv.py's kernel with the row rounded to 8 bits per group of 32: exact for a row that
    8 bits hold (integers with 127 or -127 in every group), else within half a rounding step
    per input."""
    from assistant.llm.gemv import Gemv4

    kernel = Gemv4.load(tmp_path / "kernels", eight_bit=True)
    if kernel is None:
        pytest.skip("the 4-bit step kernel needs a C compiler and a CPU with AVX2 and FMA")
    assert kernel.eight_bit
    layer = q4_1_linear(96, 128, seed=31)
    native = Int4Linear(layer, gemv=kernel)
    with torch.no_grad():
        exact_row = integer_rows(1, 128, seed=32)
        expected = nn.functional.linear(exact_row.double(), layer.weight.double())
        assert torch.allclose(native(exact_row).double(), expected, rtol=1e-5, atol=1e-3)
        row = torch.randn(1, 128, generator=torch.Generator().manual_seed(33))
        got, exact = native(row), nn.functional.linear(row, layer.weight)
        step = row.reshape(4, 32).abs().amax(-1) / 127
        bound = layer.weight.abs().reshape(96, 4, 32).sum(-1) @ step / 2 + 1e-4
        assert ((got - exact).abs()[0] <= bound).all()
        assert (got - exact).abs().max() > 0  # rounded, not float32


def gemm_kernel(tmp_path: Path) -> Any:
    from assistant.llm.gemm import Gemm4

    kernel = Gemm4.load(tmp_path / "kernels")
    if kernel is None:
        pytest.skip("the 4-bit prompt kernel needs a C compiler and a CPU with AVX2 and FMA")
    return kernel


def integer_rows(rows: int, in_features: int, seed: int) -> torch.Tensor:
    """Rows of integers in -127..127 whose every group of 32 holds 127 or -127: the kernel's
    8-bit rounding (one scale per row and group, largest magnitude / 127) keeps them exact."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(-127, 128, (rows, in_features), generator=generator).to(torch.float32)
    signs = torch.randint(0, 2, (rows, in_features // GROUP_SIZE), generator=generator) * 2 - 1
    x[:, ::GROUP_SIZE] = 127.0 * signs
    return x


@pytest.mark.parametrize("rows", [INT8_MIN_ROWS, 17, 130])
def test_prompt_rows_in_the_c_kernel_are_exact_for_8_bit_rows(tmp_path: Path, rows: int) -> None:
    """gemm.py's kernel multiplies the exact 4-bit codes by the rows rounded to 8 bits: rows
    that 8 bits hold exactly give the float32 product (row counts that fill no tile or many
    blocks of rows included), on one thread or two alike."""
    kernel = gemm_kernel(tmp_path)
    layer = q4_1_linear(48, 96, seed=21)  # three blocks of 16 outputs, three groups
    layer.bias = nn.Parameter(torch.linspace(-1, 1, 48))
    native = Int4Linear(layer, gemm=kernel)
    x = integer_rows(rows, 96, seed=rows)
    with torch.no_grad():
        exact = nn.functional.linear(x.double(), layer.weight.double(), layer.bias.double())
        threads = torch.get_num_threads()
        try:
            outputs = []
            for count in (1, 2):
                torch.set_num_threads(count)
                outputs.append(native(x[None]))
        finally:
            torch.set_num_threads(threads)
    assert outputs[0].shape == (1, rows, 48)
    assert torch.equal(outputs[0], outputs[1])
    assert torch.allclose(outputs[0][0].double(), exact, rtol=1e-5, atol=1e-3)


def test_prompt_kernel_sums_do_not_overflow(tmp_path: Path) -> None:
    """The largest codes times the largest 8-bit rows: 16-bit partial sums stay exact."""
    kernel = gemm_kernel(tmp_path)
    layer = nn.Linear(64, 16, bias=False)
    with torch.no_grad():  # groups of codes 15 (one 0, so the scale is 1/16 exactly)
        weight = torch.full((16, 64), 15 / 16)
        weight[:, ::GROUP_SIZE] = 0.0
        layer.weight.copy_(weight)
    native = Int4Linear(layer, gemm=kernel)
    x = torch.full((INT8_MIN_ROWS, 64), 127.0)
    with torch.no_grad():
        assert torch.allclose(native(x), nn.functional.linear(x, layer.weight), rtol=1e-6)
        assert torch.allclose(native(-x), -nn.functional.linear(x, layer.weight), rtol=1e-6)


def test_prompt_rows_in_the_c_kernel_round_to_8_bits(tmp_path: Path) -> None:
    """Any float32 rows: the error is that of rounding each row's group of 32 to 8 bits (at most
    half a step of its scale per input), and steps keep their own kernel."""
    kernel = gemm_kernel(tmp_path)
    layer = q4_1_linear(64, 128, seed=22)
    native = Int4Linear(layer, gemm=kernel)
    generator = torch.Generator().manual_seed(23)
    x = torch.randn(40, 128, generator=generator) * torch.logspace(-2, 1, 128)
    with torch.no_grad():
        exact = nn.functional.linear(x, layer.weight)
        got = native(x)
        step = x.reshape(40, 4, 32).abs().amax(-1) / 127  # each group's scale
        bound = (layer.weight.abs().reshape(64, 4, 32).sum(-1) @ step.t()).t() / 2 + 1e-4
        assert ((got - exact).abs() <= bound).all()
        assert (got - exact).abs().max() > 0  # rounded, not float32
        one = x[:1]
        assert torch.equal(native(one), Int4Linear(layer)(one))  # a step: torch's int4 kernel


def test_groups_the_prompt_kernel_lacks_keep_torch(tmp_path: Path) -> None:
    kernel = gemm_kernel(tmp_path)
    layer = q4_1_linear(32, 128, seed=24)
    native = Int4Linear(layer, group_size=64, gemm=kernel)  # the kernel's groups are 32 wide
    assert GEMM_NAMES[0] not in native.state()
    x = torch.randn(INT8_MIN_ROWS, 128)
    with torch.no_grad():
        assert torch.equal(native(x), Int4Linear(layer, group_size=64)(x))


def test_int4_native_prompt_products_need_the_kernel() -> None:
    with pytest.raises(ValueError, match="gemm"):
        quantize_linears(nn.Linear(64, 64), prompt_products="int4_native")


class Layers(nn.Module):
    """A small model of linear layers: two that pack, one that cannot (40 inputs), a head."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(64, 96)
        self.down = nn.Linear(96, 64, bias=False)
        self.odd = nn.Linear(40, 8)
        self.lm_head = nn.Linear(64, 48, bias=False)
        self.config = SimpleNamespace(tie_word_embeddings=True)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.down(torch.relu(self.up(x)))
        return self.lm_head(hidden) + self.odd(hidden[..., :40]).sum(-1, keepdim=True)


def layer_outputs(model: nn.Module, rows: int, seed: int) -> dict[str, torch.Tensor]:
    """Each packed layer's output on the same random rows, and the whole model's."""
    generator = torch.Generator().manual_seed(seed)
    outputs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, Int4Linear):
                x = torch.randn(1, rows, module.in_features, generator=generator)
                outputs[name] = module(x)
        outputs["model"] = model(torch.randn(1, rows, 64, generator=generator))
    return outputs


def saved_and_restored(
    tmp_path: Path, prompt_products: str, gemv: Any = None, gemm: Any = None
) -> tuple[Layers, Layers, Path]:
    """(the model packed from its float32 weights, a copy restored from the file, the file)."""
    from assistant.llm.quantize import SavedLayers, save_layers

    torch.manual_seed(13)
    computed = Layers()
    restored = copy.deepcopy(computed)
    settings = {"prompt_products": prompt_products, "gemv": gemv, "gemm": gemm}
    assert quantize_linears(computed, **settings) == 3
    path = tmp_path / "layers.safetensors"
    save_layers(computed, path)
    assert sorted(item.name for item in tmp_path.iterdir()) == ["layers.safetensors"]
    saved = SavedLayers.read(path)
    assert saved.names == {"up", "down", "lm_head"}
    assert quantize_linears(restored, **settings, saved=saved) == 3
    return computed, restored, path


def assert_same_layers(computed: Layers, restored: Layers) -> None:
    for name in ("up", "down", "lm_head"):
        first, second = getattr(computed, name), getattr(restored, name)
        assert isinstance(first, Int4Linear) and isinstance(second, Int4Linear)
        assert first.state().keys() == second.state().keys()
        for key, tensor in first.state().items():
            assert torch.equal(tensor, second.state()[key]), (name, key)
    assert type(restored.odd) is nn.Linear  # it could not be packed, and is not in the file
    assert restored.config.tie_word_embeddings is False
    for rows in (1, 20):  # a decoding step, and a prompt's pass (>= INT8_MIN_ROWS rows)
        expected = layer_outputs(computed, rows, seed=rows)
        got = layer_outputs(restored, rows, seed=rows)
        assert expected.keys() == got.keys() == {"up", "down", "lm_head", "model"}
        for name, output in expected.items():
            assert torch.equal(got[name], output), (rows, name)


@pytest.mark.parametrize("prompt_products", ["int8", "int4", "float32"])
def test_saved_layers_restore_the_computed_ones(tmp_path: Path, prompt_products: str) -> None:
    if prompt_products == "int8" and not int8_supported():
        pytest.skip("this torch has no torch._int_mm")
    computed, restored, _ = saved_and_restored(tmp_path, prompt_products)
    assert_same_layers(computed, restored)
    keeps_codes8 = prompt_products == "int8"
    assert hasattr(restored.up, "codes8") is keeps_codes8
    assert not hasattr(restored.lm_head, "codes8")  # the head multiplies only the last row
    assert (restored.up._float32 is not None) is (prompt_products == "float32")


def test_saved_layers_restore_the_c_kernel_codes(tmp_path: Path) -> None:
    from assistant.llm.gemv import Gemv4

    kernel = Gemv4.load(tmp_path / "kernels")
    if kernel is None:
        pytest.skip("the 4-bit step kernel needs a C compiler and a CPU with AVX2 and FMA")
    folder = tmp_path / "saved"
    folder.mkdir()
    computed, restored, _ = saved_and_restored(folder, "int4", gemv=kernel)
    assert set(GEMV_NAMES) <= restored.up.state().keys()
    assert_same_layers(computed, restored)


def test_saved_layers_restore_the_prompt_kernel_codes(tmp_path: Path) -> None:
    kernel = gemm_kernel(tmp_path)
    folder = tmp_path / "saved"
    folder.mkdir()
    computed, restored, _ = saved_and_restored(folder, "int4_native", gemm=kernel)
    assert set(GEMM_NAMES) <= restored.up.state().keys()
    assert not set(GEMM_NAMES) & restored.lm_head.state().keys()  # the head sees one row
    assert_same_layers(computed, restored)


@pytest.mark.parametrize("keep", [0.5, 0.99, 16])
def test_a_damaged_file_is_an_error(tmp_path: Path, keep: float) -> None:
    from assistant.llm.quantize import SavedLayers

    _, _, path = saved_and_restored(tmp_path, "int4")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if keep < 1 else int(keep)])
    with pytest.raises((ValueError, OSError)):
        SavedLayers.read(path)


def test_a_missing_or_foreign_file_is_an_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from assistant.llm.quantize import SavedLayers

    with pytest.raises((ValueError, OSError)):
        SavedLayers.read(tmp_path / "missing.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(foreign))  # no list of layers
    with pytest.raises(ValueError, match="does not list its layers"):
        SavedLayers.read(foreign)
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises((ValueError, OSError)):
        SavedLayers.read(tmp_path / "garbage.safetensors")


@pytest.mark.parametrize(
    ("prompt_products", "dropped"),
    [
        ("int4", "down."),  # every tensor of one layer
        ("int4", "up.packed"),
        ("int4", "lm_head.scales_and_zeros"),
        ("int8", "down.codes8"),
        ("int8", "up.scale8"),
    ],
)
def test_a_missing_layer_is_a_key_error_and_the_model_is_unchanged(
    tmp_path: Path, prompt_products: str, dropped: str
) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from assistant.llm.quantize import SavedLayers

    if prompt_products == "int8" and not int8_supported():
        pytest.skip("this torch has no torch._int_mm")
    _, _, path = saved_and_restored(tmp_path, prompt_products)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    kept = {key: tensor for key, tensor in tensors.items() if not key.startswith(dropped)}
    assert len(kept) < len(tensors)
    partial = tmp_path / "partial.safetensors"
    save_file(kept, str(partial), metadata=metadata)
    torch.manual_seed(13)
    model = Layers()
    before = {name: module for name, module in model.named_children()}
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(KeyError):
        quantize_linears(model, prompt_products=prompt_products, saved=SavedLayers.read(partial))
    assert dict(model.named_children()) == before
    assert all(type(module) is nn.Linear for module in model.children())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, weights[name])
    assert model.config.tie_word_embeddings is True


def test_saved_layers_of_other_products_are_a_key_error(tmp_path: Path) -> None:
    """Layers kept without 8-bit copies cannot serve a model that wants them."""
    from assistant.llm.quantize import SavedLayers

    if not int8_supported():
        pytest.skip("this torch has no torch._int_mm")
    _, _, path = saved_and_restored(tmp_path, "int4")
    model = Layers()
    with pytest.raises(KeyError):
        quantize_linears(model, prompt_products="int8", saved=SavedLayers.read(path))
    assert all(type(module) is nn.Linear for module in model.children())
