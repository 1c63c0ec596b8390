"""An optional llama.cpp engine for GGUF models on the CPU, through the `xllamacpp` wheel.

It offers what callers use of `assistant.llm.torch_engine.LanguageModel` (`stream`, `complete`,
`count_tokens`, `count_message_tokens`, `context_length`, `last_stats`) for a .gguf file on the
CPU: llama.cpp decodes the quantized weights directly, with no de-quantized dense copy. With
`engine=auto`, `engines` runs it wherever it was measured faster than ours (AVX2-only CPUs).

The prompt is built exactly as `LanguageModel` builds it (the transformers tokenizer read from the
GGUF file, its chat template, no added special tokens) and handed to llama.cpp as token ids, so
both engines see the same prompt and count tokens alike.

xllamacpp runs llama.cpp's server in-process: a request is a blocking call that hands each
streamed chunk to a callback, and the callback returning True stops the stream and cancels the
request. `stream` turns that into a generator with one background thread and a queue; closing the
generator makes the next callback return True, so decoding stops within one token. The server also
listens on an ephemeral 127.0.0.1 port; a random API key keeps other local programs out of it.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from assistant.config import Config
from assistant.devices import available_cores
from assistant.errors import ModelError
from assistant.llm.base import GenerationStats, TemplatedModel
from assistant.llm.weights import gguf_tokenizer
from assistant.models import resolve_language_model

_FINISH = {"stop": "eos", "length": "length"}
_END = object()  # the queue's last item: the request has returned


LISTEN_SECONDS = 30.0
_UNSTARTED: list[Any] = []  # servers whose listener never answered: freeing one would hang


def _wait_until_listening(server: Any) -> None:
    """Return once llama.cpp's HTTP listener answers on its loopback port.

    Freeing a server whose listener thread has not started yet blocks forever (xllamacpp
    2026.10: the destructor's stop() comes before the thread's listen() and then joins it), so a
    model that is loaded and dropped at once (a failed check, a measurement) would hang the
    process. Any HTTP answer, even 401 or 503, means the thread is listening.
    """
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + LISTEN_SECONDS
    address = f"{server.listening_address}/health"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    while time.monotonic() < deadline:
        try:
            with direct.open(address, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an answer all the same
        except OSError:
            time.sleep(0.01)
    _UNSTARTED.append(server)
    raise ModelError(f"llama.cpp's server did not start listening within {LISTEN_SECONDS:.0f} s")


class LlamaCppModel(TemplatedModel):
    """A GGUF chat model run by llama.cpp on the CPU. Build it with `LlamaCppModel.load(config)`."""

    def __init__(self, config: Config, server: Any, tokenizer: Any, context_length: int) -> None:
        self._config = config
        self._server = server
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # one request at a time, as the single server slot serves
        self.name = config.model
        self.device = "cpu"
        self.context_length = context_length
        self.last_stats: GenerationStats | None = None
        self._api_key = ""

    @classmethod
    def load(
        cls, config: Config, *, step_threads: int | None = None, weights_file: Path | None = None
    ) -> LlamaCppModel:
        """Start llama.cpp on `config.model` (a .gguf file): the prompt's pass on every
        available core, one-token steps on `step_threads` (default: every core too).
        `weights_file`: another GGUF file of the same model to read the weights from (the
        8-bit copy `weights.eight_bit_gguf` makes); the tokenizer is the model's own."""
        source = resolve_language_model(config.model)
        if source.gguf_file is None:
            raise ModelError(f"model {config.model!r} is not a .gguf file; llama.cpp needs one")
        path = weights_file or Path(source.location) / source.gguf_file
        try:
            import xllamacpp

            tokenizer, model_config = gguf_tokenizer(source, config.models_dir)
        except (ImportError, OSError, ValueError, KeyError) as error:
            raise ModelError(f"cannot load model {config.model!r}: {error}") from error
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(
                f"model {config.model!r} has no chat template; use an instruction-tuned chat model"
            )
        positions = getattr(model_config, "max_position_embeddings", None)
        context_length = (
            min(int(positions), config.context_cap) if positions else config.context_cap
        )

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = context_length
        params.n_parallel = 1
        params.cpuparams.n_threads = step_threads or available_cores()
        params.cpuparams_batch.n_threads = available_cores()
        api_key = secrets.token_urlsafe(32)  # guards the HTTP port, not in-process calls
        params.api_keys = [api_key]
        params.verbosity = -1  # llama.cpp's log would flood the terminal; load errors still raise
        try:
            server = xllamacpp.Server(params)
        except RuntimeError as error:
            raise ModelError(f"llama.cpp cannot load {path}: {error}") from error
        _wait_until_listening(server)
        model = cls(config, server, tokenizer, context_length)
        model._api_key = api_key
        return model

    def openai_endpoint(self) -> tuple[str, str]:
        """The OpenAI-compatible base URL of the llama.cpp server this engine runs (on loopback)
        and the key that guards it: to reach the same model over HTTP, as the OpenAI engine
        does (its tests and `evals/bench/openai_engine.py`)."""
        return f"{self._server.listening_address}/v1", self._api_key

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> Generator[str, None, None]:
        """Yield the answer's text pieces as llama.cpp decodes them; sets `last_stats` at the end.

        As `LanguageModel.stream`: the prompt is checked at once, decoding starts at the first
        `next()`, and closing the generator cancels decoding.
        """
        started = time.perf_counter()
        prompt_ids, limit = self._fitting_prompt(messages, max_new_tokens)
        return self._token_stream(prompt_ids, limit, started)

    def _token_stream(
        self, prompt_ids: list[int], limit: int, started: float, *, stop_at_eos: bool = True
    ) -> Generator[str, None, None]:
        request = self._request(prompt_ids, limit)
        if not stop_at_eos:
            request["ignore_eos"] = True
        return self._decode(request, len(prompt_ids), started)

    def close(self) -> None:
        """Stop llama.cpp's server and free its model (the next request would fail)."""
        self._server = None

    def _request(self, prompt_ids: list[int], limit: int) -> dict[str, Any]:
        """llama.cpp's completion request, with the samplers in transformers' order."""
        config = self._config
        request: dict[str, Any] = {
            "prompt": prompt_ids,
            "max_tokens": limit,
            "stream": True,
            "stream_options": {"include_usage": True},
            # Reusing the previous request's cache changes the numerics enough to flip greedy
            # answers whose top two tokens are close; like our engine, start from scratch.
            "cache_prompt": False,
            # transformers applies the penalty over every earlier token, the prompt included.
            "repeat_penalty": config.repetition_penalty,
            "repeat_last_n": self.context_length,
            "min_p": 0.0,  # llama.cpp's default is 0.05; transformers has none
            "seed": config.seed,
        }
        if config.temperature > 0:
            request.update(
                temperature=config.temperature,
                top_k=config.top_k_sampling,  # 0 turns it off in both
                top_p=config.top_p,
                # transformers scales by the temperature before top-k and top-p; llama.cpp after.
                samplers=["penalties", "temperature", "top_k", "top_p"],
            )
        else:
            # A temperature of 0 keeps only the top token: greedy, after the penalty.
            request.update(temperature=0.0, samplers=["penalties", "temperature"])
        return request

    def _decode(
        self, request: dict[str, Any], prompt_tokens: int, started: float
    ) -> Generator[str, None, None]:
        chunks: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        failure: list[BaseException] = []

        def on_chunk(chunk: dict[str, Any]) -> bool:
            chunks.put(chunk)
            return cancel.is_set()  # True ends the stream and cancels the request

        def work() -> None:
            try:
                with self._lock:
                    self._server.handle_completions(request, on_chunk)
            except BaseException as error:  # re-raised in the consumer's thread
                failure.append(error)
            finally:
                chunks.put(_END)

        worker = threading.Thread(target=work, name="llama.cpp request", daemon=True)
        new_tokens, first_piece_at, first_token_at, stopped = 0, 0.0, 0.0, "cancelled"
        try:
            worker.start()
            while (chunk := chunks.get()) is not _END:
                if "choices" not in chunk:
                    raise ModelError(f"llama.cpp failed: {chunk.get('error', chunk)}")
                choice = chunk["choices"][0] if chunk["choices"] else {}
                if choice.get("finish_reason"):
                    stopped = _FINISH.get(choice["finish_reason"], "eos")
                if "usage" in chunk:
                    new_tokens = int(chunk["usage"].get("completion_tokens", new_tokens))
                first_token_at = first_token_at or time.perf_counter()
                piece = choice.get("text", "")
                if piece:
                    new_tokens += 1  # one token a chunk, but the final count comes with usage
                    first_piece_at = first_piece_at or time.perf_counter()
                    yield piece
            if failure:
                raise ModelError(f"llama.cpp failed: {failure[0]}") from failure[0]
        finally:
            cancel.set()
            worker.join()  # within one token: the next callback returns True
            ended = time.perf_counter()
            self.last_stats = GenerationStats(
                prompt_tokens=prompt_tokens,
                new_tokens=new_tokens,
                ttft_s=(first_piece_at or ended) - started,
                generation_s=ended - started,
                stopped=stopped,
                first_token_s=(first_token_at or ended) - started,
            )
