"""Tests for assistant.llm.sampling: each step equals transformers' logits processor exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessor,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from assistant.config import Config
from assistant.llm import sampling

VOCAB = 50


def scores(seed: int) -> torch.Tensor:
    """Random float32 scores for one row, with a few ties and negative values."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(1, VOCAB, generator=generator) * 3
    values[0, 7] = values[0, 8]  # a tie, which the sorts must break alike
    return values


def sequence() -> torch.Tensor:
    """Ids with repeats, and ids at or beyond the scores' vocabulary (an embedding larger than
    the output head), which the penalty must skip."""
    return torch.tensor([[3, 3, 7, 12, 3, 49, VOCAB, VOCAB + 11, 0, 12, 8]])


def same_as(ours: sampling.Processor, reference: LogitsProcessor, seed: int) -> None:
    row, ids = scores(seed), sequence()
    expected = reference(ids, row.clone())
    got = ours(ids, row.clone())
    assert got.shape == row.shape and got.dtype == row.dtype
    assert torch.equal(got, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("penalty", [1.15, 1.5, 0.8])
def test_repetition_penalty_is_transformers(penalty: float, seed: int) -> None:
    same_as(sampling.repetition_penalty(penalty), RepetitionPenaltyLogitsProcessor(penalty), seed)


def test_repetition_penalty_changes_only_the_seen_tokens() -> None:
    row = scores(3)
    penalised = sampling.repetition_penalty(2.0)(sequence(), row.clone())
    seen = {3, 7, 12, 49, 0, 8}
    changed = {int(index) for index in torch.nonzero(penalised[0] != row[0])}
    assert changed == seen
    assert (penalised[0, list(seen)] < row[0, list(seen)]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 49, 50, 200])
def test_top_k_is_transformers(k: int, seed: int) -> None:
    same_as(sampling.top_k(k), TopKLogitsWarper(k), seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("p", [0.01, 0.5, 0.9, 0.999])
def test_top_p_is_transformers(p: float, seed: int) -> None:
    same_as(sampling.top_p(p), TopPLogitsWarper(p), seed)


@pytest.mark.parametrize(
    ("temperature", "top_p", "top_k_sampling", "repetition_penalty"),
    [
        (0.7, 0.9, 50, 1.15),
        (1.3, 0.5, 5, 0.8),
        (1.0, 0.95, 0, 1.0),  # temperature 1: no scaling step
        (0.5, 1.0, 10, 1.2),  # top_p 1: no nucleus step
        (2.0, 1.0, 0, 1.0),  # temperature alone
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_processors_when_sampling_are_generates_in_its_order(
    tmp_path: Path,
    temperature: float,
    top_p: float,
    top_k_sampling: int,
    repetition_penalty: float,
    seed: int,
) -> None:
    config = Config.load(
        environ={},
        home=tmp_path,
        temperature=temperature,
        top_p=top_p,
        top_k_sampling=top_k_sampling,
        repetition_penalty=repetition_penalty,
    )
    steps: list[LogitsProcessor] = []
    if repetition_penalty != 1.0:
        steps.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
    if temperature != 1.0:
        steps.append(TemperatureLogitsWarper(temperature))
    if top_k_sampling:
        steps.append(TopKLogitsWarper(top_k_sampling))
    if top_p < 1.0:
        steps.append(TopPLogitsWarper(top_p))
    same_as(sampling.processors(config), LogitsProcessorList(steps), seed)


@pytest.mark.parametrize("repetition_penalty", [1.15, 1.0])
def test_greedy_decoding_applies_only_the_penalty(
    tmp_path: Path, repetition_penalty: float
) -> None:
    """At temperature 0, `generate` (do_sample=False) applies no warper."""
    config = Config.load(
        environ={},
        home=tmp_path,
        temperature=0.0,
        top_p=0.5,
        top_k_sampling=3,
        repetition_penalty=repetition_penalty,
    )
    steps: list[LogitsProcessor] = []
    if repetition_penalty != 1.0:
        steps.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
    same_as(sampling.processors(config), LogitsProcessorList(steps), seed=4)
