"""The torch engine on the real bundled model, greedy: streaming, stops, limits, forced kernels."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Config
from assistant.errors import InputError
from assistant.llm.torch_engine import LanguageModel
from assistant.llm.weights import dense_cache_dir
from assistant.models import resolve_language_model

LONG_ANSWER = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


RAG_QUESTION = [
    {
        "role": "system",
        "content": "Answer only from the passages below and cite them like [1].",
    },
    {
        "role": "user",
        "content": "Passages:\n[1] Byte-pair encoding starts from single bytes and repeatedly "
        "merges the most frequent adjacent pair into a new symbol until the vocabulary reaches "
        "its target size.\n[2] Dense retrieval embeds questions and passages in one vector "
        "space.\n\nQuestion: How does byte-pair encoding build its vocabulary?",
    },
]


def _generate(hf_model: Any, tokenizer: Any, messages: list[dict[str, str]], config: Config) -> str:
    import torch

    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        output = hf_model.generate(
            **prompt,
            do_sample=False,
            repetition_penalty=config.repetition_penalty,
            max_new_tokens=24,
        )
    return str(
        tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    )


def _has_bfloat16_dot_products() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _long_prompt(model: LanguageModel, tokens: int) -> list[dict[str, str]]:
    from assistant.llm.loader import measuring_prompt

    text = model._tokenizer.decode(measuring_prompt(model, tokens), skip_special_tokens=True)
    return [{"role": "user", "content": text}]


def _next_token_log_probs(language_model: LanguageModel, ids: list[int]) -> Any:
    """Log-probabilities of the token after `ids`, from one pass over the whole prompt."""
    import torch

    with torch.inference_mode():
        logits = language_model._forward(torch.tensor([ids]), language_model._new_cache())
    return logits[0].float().log_softmax(-1)


def _step_log_probs(language_model: LanguageModel, ids: list[int]) -> Any:
    """Log-probabilities after the last of `ids`, read in a one-token step after the others."""
    import torch

    cache = language_model._new_cache()
    with torch.inference_mode():
        language_model._forward(torch.tensor([ids[:-1]]), cache)
        logits = language_model._forward(torch.tensor([ids[-1:]]), cache)
    return logits[0].float().log_softmax(-1)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    home = tmp_path_factory.mktemp("home")
    return Config.load(environ={}, home=home, device="cpu")


@pytest.fixture(scope="module")
def dense(config: Config, model: LanguageModel) -> LanguageModel:
    """The plain path: float32 weights, torch's attention."""
    return LanguageModel.load(config.replace(weights="dense"))


@pytest.fixture(scope="module")
def loaded(config: Config) -> tuple[LanguageModel, float]:
    started = time.perf_counter()
    model = LanguageModel.load(config)
    return model, time.perf_counter() - started


@pytest.fixture(scope="module")
def model(loaded: tuple[LanguageModel, float]) -> LanguageModel:
    return loaded[0]


@pytest.fixture(scope="module")
def reference(config: Config, model: LanguageModel) -> tuple[Any, Any]:
    """The plain transformers model and tokenizer, read from the dense cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = dense_cache_dir(resolve_language_model(config.model), config.models_dir)
    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return hf_model, AutoTokenizer.from_pretrained(folder)


@pytest.mark.e2e
def test_device_and_context_length(model: LanguageModel) -> None:
    assert model.device == "cpu"
    assert model.name == "bundled:SmolLM2-135M-Instruct"
    # SmolLM2 has 8192 positions; the config caps the context at 4096.
    assert model.context_length == 4096


@pytest.mark.e2e
def test_stream_pieces_join_to_complete(model: LanguageModel) -> None:
    pieces = list(model.stream(QUESTION, max_new_tokens=24))
    assert pieces
    assert all(pieces)
    assert "Paris" in "".join(pieces)
    assert "".join(pieces) == model.complete(QUESTION, max_new_tokens=24)
    stats = model.last_stats
    assert stats is not None
    assert stats.prompt_tokens == model.count_message_tokens(QUESTION)
    assert 0 < stats.ttft_s <= stats.generation_s
    assert stats.stopped in ("eos", "length")


@pytest.mark.e2e
def test_steps_run_on_their_threads_and_the_setting_comes_back(config: Config) -> None:
    import torch

    one_thread = LanguageModel.load(config.replace(step_threads=1))
    threads = torch.get_num_threads()
    seen = []
    for _ in one_thread.stream(QUESTION, max_new_tokens=6):
        seen.append(torch.get_num_threads())  # the consumer runs between steps
    assert seen and seen[-1] == 1  # the steps' own thread count (plan.step_threads)
    assert torch.get_num_threads() == threads


@pytest.mark.e2e
def test_max_new_tokens_is_respected(model: LanguageModel) -> None:
    model.complete(LONG_ANSWER, max_new_tokens=5)
    stats = model.last_stats
    assert stats is not None
    assert stats.new_tokens <= 5
    assert stats.stopped == "length"


@pytest.mark.e2e
@pytest.mark.parametrize("messages", [QUESTION, RAG_QUESTION], ids=["short", "rag"])
def test_same_tokens_as_generate(
    model: LanguageModel, config: Config, messages: list[dict[str, str]]
) -> None:
    """Our decoding loop on our Llama (`llama.py`, no transformers) gives, token for token,
    what transformers' `generate` gives on transformers' Llama with the same 4-bit layers and
    attention kernels (ASSISTANT_MODEL_CODE=transformers loads that one)."""
    assert type(model._model).__module__ == "assistant.llm.llama"
    theirs = LanguageModel.load(config.replace(model_code="transformers"))
    assert type(theirs._model).__module__.startswith("transformers.")
    # transformers' model takes its steps as torch operations: so do ours here (the C step
    # kernel, which runs our Llama only, has its own test below).
    ours = LanguageModel.load(config.replace(native_step="off"))
    assert theirs.plan.decode_step == ours.plan.decode_step == "torch"
    assert theirs.plan.choices["decode_step"].reason.startswith("no choice")
    assert replace(theirs.plan, choices={}) == replace(ours.plan, choices={})
    assert replace(ours.plan, choices={}, decode_step=model.plan.decode_step) == replace(
        model.plan, choices={}
    )
    expected = _generate(theirs._model, theirs._tokenizer, messages, config)
    assert ours.complete(messages, max_new_tokens=24) == expected
    assert theirs.complete(messages, max_new_tokens=24) == expected


@pytest.mark.e2e
def test_packed_layers_are_kept_and_read_back(config: Config, model: LanguageModel) -> None:
    """The first load keeps the packed 4-bit and 8-bit layers beside the dense copy; later loads
    read them (the file is not written again) and answer the same; a damaged file is packed
    and written again."""
    folder = dense_cache_dir(resolve_language_model(config.model), config.models_dir)
    first = LanguageModel.load(config)  # keeps this plan's layers (a forced plan keeps its own)
    kept = sorted(folder.parent.glob(folder.name + "-packed-*.safetensors"))
    assert len(kept) == 1  # one plan's layers at a time: they take ~200 MB
    written = kept[0].stat().st_mtime_ns
    again = LanguageModel.load(config)
    assert kept[0].stat().st_mtime_ns == written
    expected = model.complete(QUESTION, max_new_tokens=12)
    assert first.complete(QUESTION, max_new_tokens=12) == expected
    assert again.complete(QUESTION, max_new_tokens=12) == expected
    kept[0].write_bytes(b"not a safetensors file")
    repacked = LanguageModel.load(config)
    assert repacked.complete(QUESTION, max_new_tokens=12) == expected
    assert kept[0].stat().st_size > 1_000_000


@pytest.mark.e2e
@pytest.mark.parametrize("messages", [QUESTION, RAG_QUESTION], ids=["short", "rag"])
def test_dense_weights_match_plain_transformers(
    config: Config, reference: tuple[Any, Any], messages: list[dict[str, str]]
) -> None:
    """With weights=dense the answer is plain transformers' float32 `generate` of the cached
    dense copy (our decode attention and cache give the same greedy tokens)."""
    dense = LanguageModel.load(config.replace(weights="dense"))
    assert dense.weights == "dense"
    hf_model, tokenizer = reference
    expected = _generate(hf_model, tokenizer, messages, config)
    assert dense.complete(messages, max_new_tokens=24) == expected


@pytest.mark.e2e
@pytest.mark.parametrize("products", ["int8", "int4", "int4_native", "float32"])
def test_each_forced_prompt_path_stays_close_to_float32(
    config: Config, dense: LanguageModel, products: str
) -> None:
    """Every way of multiplying the prompt's rows (kernel_plan's candidates, forced as
    ASSISTANT_PROMPT_PRODUCTS does) predicts the next token as the plain float32 model does:
    the same most likely token and a KL divergence under 0.1 nats (8-bit rows cost ~0.06)."""
    from assistant.llm.gemm import Gemm4
    from assistant.llm.quantize import GEMM_NAMES, Int4Linear

    if products == "int4_native" and Gemm4.load(config.models_dir / "kernels") is None:
        pytest.skip("the 4-bit prompt kernel needs a C compiler and a CPU with AVX2 and FMA")

    forced = LanguageModel.load(config.replace(prompt_products=products, native_attention="off"))
    assert forced.weights == "int4" and forced.plan.prompt_products == products
    assert forced.plan.choices["prompt_products"].reason == "forced by ASSISTANT_PROMPT_PRODUCTS"
    head = forced._model.get_output_embeddings()
    layers = [m for m in forced._model.modules() if isinstance(m, Int4Linear) and m is not head]
    assert layers and all(hasattr(m, "codes8") == (products == "int8") for m in layers)
    assert not hasattr(head, "codes8")  # the head only ever sees the last row
    in_kernel = [GEMM_NAMES[0] in m.state() for m in layers]
    assert all(in_kernel) if products == "int4_native" else not any(in_kernel)
    ids, _ = forced._fitting_prompt(RAG_QUESTION, 24)
    assert len(ids) > 50  # a prompt, not a one-token step

    plain, quick = _next_token_log_probs(dense, ids), _next_token_log_probs(forced, ids)
    assert int(plain.argmax()) == int(quick.argmax())
    divergence = float((plain.exp() * (plain - quick)).sum())
    assert 0 < divergence < 0.1


@pytest.mark.e2e
@pytest.mark.parametrize("products", ["int4", "int4_native", "int4_native_q8"])
def test_each_forced_step_path_stays_close_to_float32(
    config: Config, dense: LanguageModel, products: str
) -> None:
    """A one-token step on the 4-bit codes, in torch's kernel or in ours (gemv.py; forced as
    ASSISTANT_STEP_PRODUCTS does; the step's other operations in torch), predicts as the plain
    float32 step does: the same most likely token and a KL divergence under 0.05 nats."""
    from assistant.llm.gemv import Gemv4

    if products != "int4" and Gemv4.load(config.models_dir / "kernels") is None:
        pytest.skip("the 4-bit step kernel needs a C compiler and a CPU with AVX2 and FMA")
    forced = LanguageModel.load(
        config.replace(step_products=products, prompt_products="float32", native_step="off")
    )
    assert forced.plan.step_products == products
    ids, _ = forced._fitting_prompt(RAG_QUESTION, 24)
    plain, quick = _step_log_probs(dense, ids), _step_log_probs(forced, ids)
    assert int(plain.argmax()) == int(quick.argmax())
    divergence = float((plain.exp() * (plain - quick)).sum())
    assert 0 < divergence < 0.05


@pytest.mark.e2e
def test_the_c_step_kernel_gives_the_torch_steps_answer(
    config: Config, dense: LanguageModel
) -> None:
    """A whole decoding step in C (step.py, forced as ASSISTANT_NATIVE_STEP=on does): with the
    rows in float32 it gives the same greedy answer as torch's steps on the same products; with
    8-bit rows it predicts as the plain float32 step does (the same most likely token, a KL
    divergence under 0.05 nats)."""
    from assistant.llm.step import StepKernel

    if StepKernel.library(config.models_dir / "kernels") is None:
        pytest.skip("the step kernel needs a C compiler and a CPU with AVX2 and FMA")
    answers = {}
    for native_step in ("on", "off"):
        forced = LanguageModel.load(
            config.replace(
                step_products="int4_native", prompt_products="float32", native_step=native_step
            )
        )
        assert forced.plan.decode_step == ("kernel" if native_step == "on" else "torch")
        assert (forced._model.step_kernel is not None) == (native_step == "on")
        answers[native_step] = forced.complete(RAG_QUESTION, max_new_tokens=24)
    assert answers["on"] == answers["off"] and answers["on"].strip()
    q8 = LanguageModel.load(
        config.replace(step_products="int4_native_q8", prompt_products="float32", native_step="on")
    )
    assert q8.plan.choices["decode_step"].reason == "forced by ASSISTANT_NATIVE_STEP"
    # With 8-bit rows the two are not equal: rounding is not continuous, and float-rounding
    # differences in the norms move a code now and then, which later layers carry on; each is
    # one draw of the same 8-bit rounding noise (measured on three prompts: a mean KL divergence
    # from float32 of 0.016-0.060 nats for the kernel, 0.042-0.069 for torch's steps).
    ids, _ = q8._fitting_prompt(RAG_QUESTION, 24)
    answer = dense._tokenizer(dense.complete(RAG_QUESTION, max_new_tokens=16))["input_ids"][:12]
    plain = _forced_steps_log_probs(dense, ids, answer)
    errors = {}
    for way in ("kernel", "torch"):
        q8._use_step_kernel(way == "kernel")
        quick = _forced_steps_log_probs(q8, ids, answer)
        errors[way] = [float((p.exp() * (p - q)).sum()) for p, q in zip(plain, quick, strict=True)]
        agree = sum(int(p.argmax()) == int(q.argmax()) for p, q in zip(plain, quick, strict=True))
        assert agree >= len(answer) - 2, (way, agree)
    mean = {way: sum(values) / len(values) for way, values in errors.items()}
    assert 0 < mean["kernel"] < 0.1 and mean["kernel"] < 2 * mean["torch"], mean


def _forced_steps_log_probs(
    language_model: LanguageModel, ids: list[int], answer: list[int]
) -> list[Any]:
    """Log-probabilities after each one-token step through `answer`, following the prompt."""
    import torch

    cache = language_model._new_cache()
    steps = []
    with torch.inference_mode():
        language_model._forward(torch.tensor([ids]), cache)
        for token in answer:
            logits = language_model._forward(torch.tensor([[token]]), cache)
            steps.append(logits[0].float().log_softmax(-1))
    return steps


@pytest.mark.e2e
def test_forcing_the_c_step_kernel_where_it_cannot_run_is_an_error(config: Config) -> None:
    from assistant.errors import ModelError

    with pytest.raises(ModelError, match="C step kernel"):
        LanguageModel.load(config.replace(step_products="int4", native_step="on"))


@pytest.mark.e2e
def test_step_threads_do_not_change_the_tokens(config: Config, model: LanguageModel) -> None:
    """Steps on one thread or on two (ASSISTANT_STEP_THREADS) give the same greedy answer."""
    answers = {
        threads: LanguageModel.load(config.replace(step_threads=threads)).complete(
            RAG_QUESTION, max_new_tokens=24
        )
        for threads in (1, 2)
    }
    assert answers[1] == answers[2]


@pytest.mark.e2e
def test_no_prompt_pass_falls_off_a_cliff(model: LanguageModel, dense: LanguageModel) -> None:
    """The measured plan's pass over a ~1,500-token prompt takes at most twice the plain float32
    pass timed beside it (a guard against a path 10x slower on this CPU, not a speed target)."""
    ids = dense.prompt_ids(_long_prompt(dense, 1500))
    assert 1300 < len(ids) < 1700
    chosen, plain = [], []
    for _ in range(2):  # taking turns; the best of each
        chosen.append(model.time_tokens(ids, 2)[0])
        plain.append(dense.time_tokens(ids, 2)[0])
    assert min(chosen) <= 2 * min(plain), (min(chosen), min(plain), model.plan.choices)


@pytest.mark.e2e
def test_the_prompt_kernel_stays_close_to_torch_attention(
    model: LanguageModel, config: Config
) -> None:
    """With 4-bit weights the prompt's pass attends in the C kernel (attention.py) when it can be
    built; the next token's distribution stays that of torch's attention."""

    from assistant.llm import native

    same = config.replace(weights="int4", prompt_products="int4")  # only attention differs
    with_kernel = LanguageModel.load(same.replace(native_attention="on"))
    if with_kernel.prompt_attention != "kernel":
        assert native.compiler() is None or not _has_bfloat16_dot_products()
        pytest.skip("the attention kernel needs a C compiler and a CPU with AVX512-BF16")
    plain = LanguageModel.load(same.replace(native_attention="off"))
    assert plain.prompt_attention == "torch"
    dense = LanguageModel.load(config.replace(weights="dense", native_attention="on"))
    assert dense.prompt_attention == "torch"  # float32 weights keep float32 attention
    ids, _ = model._fitting_prompt(RAG_QUESTION, 24)

    kernel = _next_token_log_probs(with_kernel, ids)
    torch_attention = _next_token_log_probs(plain, ids)
    assert int(kernel.argmax()) == int(torch_attention.argmax())
    divergence = float((torch_attention.exp() * (torch_attention - kernel)).sum())
    assert 0 < divergence < 0.02


@pytest.mark.e2e
def test_closing_the_stream_cancels(model: LanguageModel) -> None:
    stream = model.stream(LONG_ANSWER, max_new_tokens=50)
    first = next(stream)
    assert first
    stream.close()
    stats = model.last_stats
    assert stats is not None
    assert stats.stopped == "cancelled"
    assert stats.new_tokens < 50


@pytest.mark.e2e
def test_interrupt_in_the_consumer_cancels(model: LanguageModel) -> None:
    def consume(pieces: Iterator[str]) -> None:
        for _ in pieces:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), closing(model.stream(LONG_ANSWER)) as pieces:
        consume(pieces)
    assert model.last_stats is not None
    assert model.last_stats.stopped == "cancelled"


@pytest.mark.e2e
def test_ctrl_c_during_decoding_cancels_and_leaves_no_thread(model: LanguageModel) -> None:
    threads_before = threading.active_count()
    ctrl_c = threading.Timer(0.5, _thread.interrupt_main)  # SIGINT-like, into the main thread
    with (
        pytest.raises(KeyboardInterrupt),
        closing(model.stream(LONG_ANSWER, max_new_tokens=200)) as pieces,
    ):
        ctrl_c.start()
        for _ in pieces:
            pass
    ctrl_c.join()
    assert model.last_stats is not None
    assert model.last_stats.stopped == "cancelled"
    assert model.last_stats.new_tokens < 200
    assert threading.active_count() == threads_before
    assert model.complete(QUESTION, max_new_tokens=12)  # still usable afterwards


@pytest.mark.e2e
def test_dense_cache_is_reused(
    config: Config, model: LanguageModel, loaded: tuple[LanguageModel, float]
) -> None:
    folder = dense_cache_dir(resolve_language_model(config.model), config.models_dir)
    assert (folder / "config.json").is_file()
    assert not [p for p in config.models_dir.iterdir() if p.name.startswith(".")]
    started = time.perf_counter()
    again = LanguageModel.load(config)
    assert time.perf_counter() - started < loaded[1]
    assert again.complete(QUESTION, max_new_tokens=12) == model.complete(
        QUESTION, max_new_tokens=12
    )


@pytest.mark.e2e
def test_context_cap_applies(config: Config) -> None:
    assert LanguageModel.load(config.replace(context_cap=1024)).context_length == 1024


@pytest.mark.e2e
def test_sampling_is_reproducible_with_a_seed(config: Config) -> None:
    sampling = LanguageModel.load(config.replace(temperature=0.8, seed=7))
    first = sampling.complete(QUESTION, max_new_tokens=12)
    assert first
    assert sampling.complete(QUESTION, max_new_tokens=12) == first


@pytest.mark.e2e
def test_too_long_prompt_is_refused(model: LanguageModel) -> None:
    long_text = "retrieval " * (model.context_length + 10)
    with pytest.raises(InputError, match="tokens"):
        model.stream([{"role": "user", "content": long_text}])


@pytest.mark.e2e
def test_malformed_messages_are_refused(model: LanguageModel) -> None:
    with pytest.raises(InputError):
        model.count_message_tokens([{"role": "wizard", "content": "hi"}])
    with pytest.raises(InputError):
        model.complete([])


@pytest.mark.e2e
def test_token_counts(model: LanguageModel) -> None:
    assert model.count_tokens("") == 0
    assert 0 < model.count_tokens("Paris is the capital of France.") < 12
    assert model.count_message_tokens(QUESTION) > model.count_tokens(QUESTION[0]["content"])
