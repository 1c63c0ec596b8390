"""Tests for assistant.llm.step (a whole decoding step of the plain Llama in one C call).

A tiny random Llama (2 layers, grouped heads) is packed as the torch engine packs the bundled
model (`quantize_linears` with the C product kernel); the C step must give the torch step's
logits and write the same keys and values into the cache (`llama.py` is the reference).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assistant.llm import llama
from assistant.llm.gemv import Gemv4
from assistant.llm.quantize import int4_supported, quantize_linears
from assistant.llm.step import StepKernel

pytestmark = pytest.mark.skipif(not int4_supported(), reason="this torch has no int4 CPU kernels")

VOCAB = 96
SETTINGS = llama.LlamaSettings(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=VOCAB,
    max_position_embeddings=2048,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    tie_word_embeddings=False,
)


def tiny_llama(seed: int = 0) -> llama.LlamaForCausalLM:
    """Our Llama with random weights spread enough that greedy decoding does not repeat."""
    model = llama.LlamaForCausalLM(SETTINGS)
    generator = torch.Generator().manual_seed(seed)
    state = {
        name: (
            1.0 + 0.1 * torch.randn(tensor.shape, generator=generator)
            if name.endswith("norm.weight")
            else 0.2 * torch.randn(tensor.shape, generator=generator)
        )
        for name, tensor in model.state_dict().items()
    }
    model.load_state_dict(state, assign=True)
    return model.eval()


def packed(tmp_path: Path, *, eight_bit: bool, seed: int = 0) -> llama.LlamaForCausalLM:
    gemv = Gemv4.load(tmp_path / "kernels", eight_bit=eight_bit)
    if gemv is None:
        pytest.skip("the 4-bit step kernel needs a C compiler and a CPU with AVX2 and FMA")
    model = tiny_llama(seed)
    quantize_linears(model, prompt_products="float32", gemv=gemv)
    return model


def bound(tmp_path: Path, model: llama.LlamaForCausalLM) -> StepKernel:
    library = StepKernel.library(tmp_path / "kernels")
    if library is None:
        pytest.skip("the step kernel needs a C compiler and a CPU with AVX2 and FMA")
    kernel = StepKernel.bind(library, model)
    assert kernel is not None
    return kernel


def prompt(length: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(1))


def decode_both(
    model: llama.LlamaForCausalLM, kernel: StepKernel, prompt_length: int, steps: int
) -> tuple[list[torch.Tensor], list[torch.Tensor], llama.Cache, llama.Cache]:
    """Greedy steps after the same prompt, torch's and the kernel's, each fed the torch step's
    token (so one early difference cannot send the two down different texts)."""
    ids = prompt(prompt_length)
    by_torch, by_kernel = model.new_cache(), model.new_cache()
    torch_logits, kernel_logits = [], []
    with torch.inference_mode():
        token = int(model(ids, by_torch, logits_to_keep=1).logits[0, -1].argmax())
        model(ids, by_kernel, logits_to_keep=1)
        for _ in range(steps):
            expected = model(torch.tensor([[token]]), by_torch, logits_to_keep=1).logits[0, -1]
            torch_logits.append(expected)
            kernel_logits.append(kernel.step(token, by_kernel)[0])
            token = int(expected.argmax())
    return torch_logits, kernel_logits, by_torch, by_kernel


def filled(cache: llama.Cache, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    keys, values = cache.layers[layer].reserve(cache.length, 2, 16)
    return keys[..., : cache.length, :], values[..., : cache.length, :]


def test_a_step_gives_the_torch_steps_logits_and_cache(tmp_path: Path) -> None:
    model = packed(tmp_path, eight_bit=False)
    kernel = bound(tmp_path, model)
    expected, got, by_torch, by_kernel = decode_both(model, kernel, 7, 24)
    for torch_step, kernel_step in zip(expected, got, strict=True):
        torch.testing.assert_close(kernel_step, torch_step, atol=1e-4, rtol=1e-4)
    assert len({int(logits.argmax()) for logits in expected}) > 1  # not one repeated token
    assert by_torch.length == by_kernel.length == 7 + 24
    for layer in range(SETTINGS.num_hidden_layers):
        for ours, reference in zip(filled(by_kernel, layer), filled(by_torch, layer), strict=True):
            torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def kl(reference: torch.Tensor, other: torch.Tensor) -> float:
    plain, quick = reference.log_softmax(-1), other.log_softmax(-1)
    return float((plain.exp() * (plain - quick)).sum())


def test_a_step_with_8_bit_rows_is_as_close_to_float32_rows_as_the_torch_step(
    tmp_path: Path,
) -> None:
    """Both round each product's row to 8 bits per group. Rounding is not continuous: the
    kernel's norms and rotations differ from torch's by float rounding, which now and then moves
    a rounded code by one step, so the two are not equal; but the kernel must approximate the
    float32-row step as well as the torch step does (measured: a median KL divergence from
    float32 rows of ~0.002 nats for both, ~0.0008 between them)."""
    model = packed(tmp_path, eight_bit=True)
    kernel = bound(tmp_path, model)
    by_torch, by_kernel, cache, _ = decode_both(model, kernel, 7, 24)
    float_rows = packed(tmp_path, eight_bit=False)  # the same weights, rows kept in float32
    reference = float_rows.new_cache()
    ids = prompt(7)
    torch_errors, kernel_errors = [], []
    with torch.inference_mode():
        float_rows(ids, reference)
        token = int(model(ids, model.new_cache(), logits_to_keep=1).logits[0, -1].argmax())
        for torch_step, kernel_step in zip(by_torch, by_kernel, strict=True):
            exact = float_rows(torch.tensor([[token]]), reference, logits_to_keep=1).logits[0, -1]
            torch_errors.append(kl(exact, torch_step))
            kernel_errors.append(kl(exact, kernel_step))
            assert kl(torch_step, kernel_step) < 0.02
            token = int(torch_step.argmax())
    assert cache.length == 7 + 24
    torch_median = sorted(torch_errors)[len(torch_errors) // 2]
    kernel_median = sorted(kernel_errors)[len(kernel_errors) // 2]
    assert 0 < kernel_median < 2 * torch_median, (kernel_median, torch_median)


def test_threads_do_not_change_a_step(tmp_path: Path) -> None:
    """Threads split the products' outputs and the attention's heads: the same arithmetic."""
    model = packed(tmp_path, eight_bit=True)
    kernel = bound(tmp_path, model)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(decode_both(model, kernel, 40, 8)[1])
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        assert torch.equal(one, two)


def test_the_cache_grows_under_the_kernel(tmp_path: Path) -> None:
    """Steps past the cache's first capacity grow it (the filled positions copied) and go on
    giving the torch step's logits."""
    model = packed(tmp_path, eight_bit=False)
    kernel = bound(tmp_path, model)
    steps = llama.SPARE_POSITIONS + 8
    expected, got, by_torch, by_kernel = decode_both(model, kernel, 3, steps)
    assert by_kernel.layers[0].reserve(0, 2, 16)[0].shape[-2] > llama.grown_capacity(3)
    torch.testing.assert_close(got[-1], expected[-1], atol=1e-3, rtol=1e-3)
    for ours, reference in zip(filled(by_kernel, 1), filled(by_torch, 1), strict=True):
        torch.testing.assert_close(ours, reference, atol=1e-3, rtol=1e-3)


def test_the_model_runs_its_steps_in_the_kernel_when_given_one(tmp_path: Path) -> None:
    """`forward` hands a one-token step after the prompt to `step_kernel`, and nothing else."""
    model = packed(tmp_path, eight_bit=False)
    kernel = bound(tmp_path, model)
    ids = prompt(6)
    results = []
    with torch.inference_mode():
        for given in (None, kernel):
            model.step_kernel = given
            cache = model.new_cache()
            whole = model(ids[:, :-1], cache).logits  # a prompt: never the kernel's
            stepped = model(ids[:, -1:], cache, logits_to_keep=1).logits
            results.append((whole, stepped, cache.length))
    model.step_kernel = None
    (whole, stepped, length), (whole_k, stepped_k, length_k) = results
    assert torch.equal(whole, whole_k) and length == length_k == 6
    # The kernel sums in another order than torch: bit-equal logits would mean it never ran.
    assert not torch.equal(stepped_k, stepped)
    assert stepped.shape == stepped_k.shape == (1, 1, VOCAB)
    torch.testing.assert_close(stepped_k, stepped, atol=1e-4, rtol=1e-4)


def test_models_the_kernel_does_not_run_are_refused(tmp_path: Path) -> None:
    """Not bound: float32 products, torch's 4-bit products, a mix of rounding kinds."""
    library = StepKernel.library(tmp_path / "kernels")
    gemv = Gemv4.load(tmp_path / "kernels")
    q8 = Gemv4.load(tmp_path / "kernels", eight_bit=True)
    if library is None or gemv is None or q8 is None:
        pytest.skip("the step kernel needs a C compiler and a CPU with AVX2 and FMA")
    assert StepKernel.bind(library, tiny_llama()) is None
    torch_products = tiny_llama()
    quantize_linears(torch_products, prompt_products="float32")
    assert StepKernel.bind(library, torch_products) is None
    mixed = packed(tmp_path, eight_bit=False)
    mixed.lm_head._gemv = q8
    assert StepKernel.bind(library, mixed) is None
