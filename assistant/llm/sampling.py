"""The repetition penalty and sampling warpers, as transformers' `generate` applies them.

The torch engine decodes in its own loop (`torch_engine`) and needs the same scores `generate`
would sample from; importing transformers' generation package for four small functions costs a
second of a one-shot command's start, so they are written out here, operation for operation
(tests/unit/test_llm_sampling.py compares each with transformers' processor).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional

from assistant.config import Config

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def processors(config: Config) -> Processor:
    """`scores = process(sequence, scores)` with the penalty, then temperature, top-k and top-p
    when sampling, in `generate`'s order."""
    steps: list[Processor] = []
    if config.repetition_penalty != 1.0:
        steps.append(repetition_penalty(float(config.repetition_penalty)))
    if config.temperature > 0:
        if config.temperature != 1.0:
            temperature = float(config.temperature)
            steps.append(lambda _ids, scores: scores / temperature)
        if config.top_k_sampling > 0:
            steps.append(top_k(config.top_k_sampling))
        if config.top_p < 1.0:
            steps.append(top_p(float(config.top_p)))

    def process(sequence: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for step in steps:
            scores = step(sequence, scores)
        return scores

    return process


def repetition_penalty(penalty: float) -> Processor:
    """Divide the positive scores of tokens already in the sequence by `penalty`, multiply the
    negative ones (CTRL, Keskar et al. 2019)."""

    def apply(sequence: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        ids = sequence.clamp(max=vocab)  # ids beyond the scores land in a padding column
        padded = functional.pad(scores, (0, 1))
        seen = torch.gather(padded, 1, ids)
        seen = torch.where(seen < 0, seen * penalty, seen / penalty)
        return padded.scatter(1, ids, seen)[..., :vocab]

    return apply


def top_k(k: int) -> Processor:
    def apply(_sequence: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        kept = min(max(k, 1), scores.shape[-1])
        threshold = torch.topk(scores, kept)[0][..., -1, None]
        return scores.masked_fill(scores < threshold, -float("inf"))

    return apply


def top_p(p: float) -> Processor:
    def apply(_sequence: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        sorted_scores, order = torch.sort(scores, descending=False)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative <= (1 - p)
        drop_sorted[..., -1:] = False
        drop = drop_sorted.scatter(1, order, drop_sorted)
        return scores.masked_fill(drop, -float("inf"))

    return apply
