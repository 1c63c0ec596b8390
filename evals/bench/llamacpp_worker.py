"""The llama.cpp side of `evals/bench/llamacpp.py`; runs in its own virtual environment.

It imports only the standard library and `xllamacpp` (llama.cpp's server, in-process), never the
project, so the project's environment stays free of llama.cpp. The protocol is JSON lines:

- argv[1] is the setup (GGUF path, threads, context size, sampling settings); the worker loads the
  model and answers one line: load time, versions, system info;
- then each stdin line is one run (prompt token ids, new tokens); each answer line holds the time to
  first token, the decode speed, the text and llama.cpp's own timings. End of input ends the worker.

llama.cpp logs to the C-level stdout and stderr; the answers go to a private copy of stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever llama.cpp prints lands on stderr, never in the answers
    setup = json.loads(sys.argv[1])

    started = time.perf_counter()
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = setup["gguf"]
    params.n_ctx = setup["context"]
    params.n_parallel = 1  # one slot: a second request waits, so a cancelled one must end
    params.cpuparams.n_threads = setup["threads"]
    params.cpuparams_batch.n_threads = setup["threads"]
    server = xllamacpp.Server(params)
    load_s = time.perf_counter() - started
    answers.write(
        json.dumps(
            {
                "load_s": load_s,
                "xllamacpp": xllamacpp.__version__,
                "system_info": xllamacpp.get_system_info().strip(),
                "threads": setup["threads"],
            }
        )
        + "\n"
    )

    for line in sys.stdin:
        job = json.loads(line)
        answers.write(json.dumps(run(server, setup, job)) + "\n")


def run(server: Any, setup: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    request = {
        "prompt": job["prompt_ids"],  # token ids: exactly the prompt our tokenizer built
        "max_tokens": job["new_tokens"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "cache_prompt": False,  # every run pays the full prompt pass, as ours does
        **setup["sampling"],
    }
    pieces: list[str] = []
    final: dict[str, Any] = {}
    first_at = 0.0

    def on_chunk(chunk: dict[str, Any]) -> bool:
        nonlocal first_at
        if "error" in chunk or ("code" in chunk and "choices" not in chunk):  # request refused
            final["error"] = chunk
            return True
        text = chunk["choices"][0]["text"] if chunk.get("choices") else ""
        if text and not first_at:
            first_at = time.perf_counter()
        pieces.append(text)
        if "usage" in chunk:
            final.update(usage=chunk["usage"], timings=chunk.get("timings", {}))
        return False  # True would stop the stream (and cancel the request)

    started = time.perf_counter()
    server.handle_completions(request, on_chunk)
    ended = time.perf_counter()
    if "error" in final:
        return {"error": final["error"]}
    new_tokens = int(final.get("usage", {}).get("completion_tokens", 0))
    return {
        "ttft_s": (first_at or ended) - started,
        "tokens_per_s": (new_tokens - 1) / (ended - first_at) if new_tokens > 1 else 0.0,
        "new_tokens": new_tokens,
        "generation_s": ended - started,
        "prompt_tokens": final.get("usage", {}).get("prompt_tokens", 0),
        "text": "".join(pieces),
        "llamacpp_timings": final.get("timings", {}),
    }


if __name__ == "__main__":
    main()
