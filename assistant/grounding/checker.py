"""Check an answer against its passages, sentence by sentence, and cite or abstain.

The language model is tiny: it rarely cites correctly and often answers from its own memory. So
the system, not the model, decides what is grounded. After streaming, the answer is split into
sentences; each is scored against every passage and gets the passage(s) that actually support it
as its citations, whatever markers the model wrote. Unsupported sentences are flagged (kept, for
the CLI to dim) or dropped. If no sentence is supported, or the passages hardly relate to the
question, we abstain with `ABSTAIN_MESSAGE` instead of showing an invented answer; so too when a
name or number of the question is in none of the passages (`missing_terms`): the same key-term
signal as below, applied to the question before anything is generated.

Who judges (`verifier`, the `verifier` setting): the trained cross-encoder of `verifier.py`
(default) or the hand-set rules below. With the model, a claim is scored against the few evidence
windows closest to it by embedding cosine, supported at the threshold tuned with the model; a name
or number of the claim missing from the passage still fails it (`KEY_TERM_VETO`: on HaluEval
validation rows it lifted accuracy from 0.77 to 0.85), and, given the question, the check abstains
(`UNANSWERED`) when the model finds the passages do not answer it; quotes of the passages stand
in for an unsupported answer only when it finds that the quotes answer it (`quotes_answer`). The
rules follow.

Support of a claim by an evidence text combines three signals (`combine_signals`):

- lexical: the share of the claim's content words (lower-cased, stop words removed, lightly
  stemmed, numbers kept) that occur in the evidence;
- semantic: the best cosine similarity between the claim and the evidence, one of its sentences
  or a pair of neighbouring sentences, rescaled above `SEMANTIC_FLOOR`. It credits paraphrases;
- key terms: a name or number of the claim missing from the evidence. A hallucination usually
  keeps the topic and swaps exactly these, which embeddings barely notice.

score = (w * lexical + (1 - w) * semantic) * (1 - penalty if a key term is missing), in 0..1.
A sentence is supported when its best score over the passages reaches the threshold.

Fragments without content words other than filler ("Sure.", "Yes.", "Here is what I found in the
passages:") are not claims: they stay in the answer as written (in both modes), are never flagged
or cited, and do not count as supported, so an answer made only of them abstains. Filler words
are also left out of a claim's words ("According to the passage, X" is checked as "X").

The embedding function is injected (`Embed`), so the logic is tested with tiny deterministic fakes
and run with the real sentence embedder.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import get_args

import numpy as np
import numpy.typing as npt

from assistant.config import UnsupportedMode, VerifierMode
from assistant.errors import ConfigError
from assistant.grounding.verifier import (
    SupportModel,
    claim_text,
    evidence_windows,
    shared_verifier,
)
from assistant.index.passage import Passage
from assistant.text.citations import cited_numbers, render_sentence, strip_markers
from assistant.text.sentences import (
    BULLET,
    FILLER,
    content_words,
    is_claim,
    key_terms,
    question_terms,
    sentence_spans,
    split_sentences,
)

# Maps texts to L2-normalised row vectors (one row per text).
Embed = Callable[[Sequence[str]], npt.NDArray[np.floating]]
EMBEDDING_CACHE_SIZE = 4096  # texts; 384-dim float32 rows: ~6 MB


_UNFOLDED = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss"})


def _fold(text: str) -> str:
    """text without accents: "Bolesław Kraków" -> "Boleslaw Krakow"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_UNFOLDED))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


class RememberingEmbed:
    """An `Embed` that remembers the vectors of the texts it saw last (least recently used out).

    One answer checks the same passages many times: before generating (is the evidence weak?),
    after each sentence while streaming (give up?), at the end, and for quotes. Their evidence
    units are embedded once; only texts not seen yet reach the model, in one batch.
    """

    def __init__(self, embed: Embed, size: int = EMBEDDING_CACHE_SIZE) -> None:
        self.embed = embed
        self.size = size
        self._vectors: OrderedDict[str, npt.NDArray[np.floating]] = OrderedDict()

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.floating]:
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            fresh = np.asarray(self.embed(missing), dtype=np.float32)
            for text, vector in zip(missing, fresh, strict=True):
                self._vectors[text] = vector
        rows = []
        for text in texts:
            self._vectors.move_to_end(text)
            rows.append(self._vectors[text])
        while len(self._vectors) > max(self.size, len(texts)):
            self._vectors.popitem(last=False)
        if not rows:
            return np.asarray(self.embed([]), dtype=np.float32)
        return np.stack(rows)


ABSTAIN_MESSAGE = "I couldn't find this in your documents."

# Tuned with `python evals/tune_support.py` (results in evals/results/tune_support.json) on data
# no reported eval uses: HaluEval QA rows 4000-4999 and SciFact training claims for support
# (mean accuracy 0.753: HaluEval 0.772, SciFact paraphrases 0.734), SQuAD 2.0 dev questions
# outside the seed-0 balanced sample of 2000 for evidence (keeps 97% of in-corpus questions,
# rejects 93% of off-corpus ones). A missing name or number zeroes the score (penalty 1.0); else
# a claim passes with all its words in the evidence, or fewer words and a cosine above ~0.6.
SUPPORT_THRESHOLD = 0.19
LEXICAL_WEIGHT = 0.2
SEMANTIC_FLOOR = 0.6
KEY_TERM_PENALTY = 1.0
MIN_EVIDENCE_SCORE = 0.46
# Passages scoring within this margin of the best one are cited too.
CITATION_MARGIN = 0.05
# With the trained verifier: how many evidence windows (closest by embedding cosine) it scores
# per claim and per question. The rest are taken as not supporting: one pass stays a few pairs.
WINDOWS_PER_CLAIM = 3
WINDOWS_PER_QUESTION = 3
# With the trained verifier, also require a claim's names and numbers to be in the passage? Set
# by measurement on the validation rows (evals/README.md, "Trained verifier").
KEY_TERM_VETO = True
# With the trained verifier, quotes shown instead of the model's answer must answer the question
# themselves: the verifier's answerability of the quoted sentences reaches this. Chosen with
# `python evals/tune_quotes.py` on 600 questions of the SQuAD training articles, as if the model's
# answer were unsupported (evals/results/tune_quotes.json): of the quotes reaching the check, it
# blocks 37% of the unanswerable questions' and 12% of the answerable ones' (balanced accuracy
# 0.62). The passages' own answerable threshold (0.44) blocks only 5% of the unanswerable ones':
# quotes are on topic, so the verifier rates them high; it separates them only weakly (on the
# SQuAD validation articles: 10 fewer hallucinations, 8 more false abstentions; evals/README.md).
QUOTE_ANSWERABLE_THRESHOLD = 0.64
SCORE_CACHE_SIZE = 4096  # (window, claim) pairs already scored: the streaming checks repeat them

UNSUPPORTED_MODES: tuple[UnsupportedMode, ...] = get_args(UnsupportedMode)


class GroundingReason(StrEnum):
    """Why a checked answer abstained, or that it quotes the passages instead of the model's
    answer. A `StrEnum`: each reason equals its string and is written as it in JSON."""

    WEAK_RETRIEVAL = "weak_retrieval"  # the passages hardly relate to the question
    MISSING_TERMS = "missing_terms"  # a name or number of the question is in no passage
    NO_PASSAGES = "no_passages"  # nothing to check the answer against
    NO_SUPPORTED_SENTENCE = "no_supported_sentence"  # nothing the model said is supported
    UNANSWERED = "unanswered"  # the trained verifier: the passages do not answer the question
    ANSWER_TYPE = "answer_type"  # asks for a number or a date; the answer holds none
    EXTRACTIVE = "extractive"  # not an abstention: quotes instead of the model's answer


@dataclass(frozen=True)
class SentenceCheck:
    """One sentence of the answer and the verdict on it."""

    text: str  # the sentence with the model's markers removed
    supported: bool
    citations: tuple[int, ...]  # 1-based passage numbers that support it (chosen by the system)
    model_citations: tuple[int, ...]  # the valid passage numbers the model wrote
    score: float  # best support score over the passages, 0..1
    is_claim: bool  # False for fragments without content words ("Sure.")
    display: str = ""  # the sentence as shown in the answer (with citations); "" when dropped


@dataclass(frozen=True)
class GroundedAnswer:
    """The checked answer: what to display, whether we abstained, and the per-sentence verdicts."""

    answer: str  # displayed text with system citations; unsupported sentences flagged or dropped
    abstained: bool
    reason: GroundingReason | None  # None: the model's answer, checked, stands
    sentences: tuple[SentenceCheck, ...]
    raw_answer: str  # what the model produced
    evidence_score: float | None = None  # question-passage similarity, when a question was given

    @property
    def claims(self) -> tuple[SentenceCheck, ...]:
        return tuple(sentence for sentence in self.sentences if sentence.is_claim)


# --------------------------------------------------------------------------------------------
# Support
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """What is checked: the text to embed, and the words that must be found in the evidence."""

    text: str
    words: frozenset[str]
    key_terms: frozenset[str]

    @classmethod
    def from_sentence(cls, sentence: str) -> Claim:
        text = strip_markers(sentence)
        return cls(text, frozenset(content_words(text)) - FILLER, key_terms(text))

    @classmethod
    def from_answer(cls, answer: str, question: str | None = None) -> Claim:
        """A short answer ("Delhi") means something only with its question: embed
        "question answer", but look up the answer's own words (its new facts) in the evidence."""
        answer = strip_markers(answer)
        claim = cls.from_sentence(answer)
        if not question or not claim.words:
            return claim
        return cls(f"{question.strip()} {answer}", claim.words, claim.key_terms)


@dataclass(frozen=True)
class SupportSignals:
    """The raw evidence that one text supports one claim, before weighting."""

    lexical: float  # share of the claim's words found in the evidence, 0..1
    semantic: float  # best cosine similarity between the claim and an evidence unit, -1..1
    missing_key_term: bool  # a name or number of the claim is absent from the evidence


def combine_signals(
    signals: SupportSignals, lexical_weight: float, semantic_floor: float, key_term_penalty: float
) -> float:
    """Support in 0..1: a weighted mean of lexical share and rescaled cosine, reduced by
    `key_term_penalty` (a share) when a name or number of the claim is missing."""
    semantic = min(1.0, max(0.0, (signals.semantic - semantic_floor) / (1.0 - semantic_floor)))
    support = lexical_weight * signals.lexical + (1.0 - lexical_weight) * semantic
    if signals.missing_key_term:
        support *= 1.0 - key_term_penalty
    return min(1.0, max(0.0, support))


def evidence_units(text: str) -> list[str]:
    """What a claim is compared with: the whole text, each sentence, each neighbouring pair."""
    sentences, whole, pairs = _unit_stages(text)
    return [*whole, *sentences, *pairs]


def _unit_stages(text: str) -> tuple[list[str], list[str], list[str]]:
    """`evidence_units` in the order the weak-evidence check embeds them: the sentences (which
    settled 117 of the 119 questions of the sample-corpus set that had strong evidence), the
    whole text, then the neighbouring pairs (about half of all the words)."""
    sentences = split_sentences(text)
    if len(sentences) < 2:
        return [], [text], []
    pairs = [f"{first} {second}" for first, second in itertools.pairwise(sentences)]
    return sentences, [text], pairs


@dataclass(frozen=True)
class _Evidence:
    words: frozenset[str]
    vectors: npt.NDArray[np.floating]  # one row per unit (see `evidence_units`)


class SupportChecker:
    """Scores how well texts support claims, re-cites answers and decides when to abstain."""

    def __init__(
        self,
        embed: Embed,
        *,
        threshold: float = SUPPORT_THRESHOLD,
        lexical_weight: float = LEXICAL_WEIGHT,
        semantic_floor: float = SEMANTIC_FLOOR,
        key_term_penalty: float = KEY_TERM_PENALTY,
        min_evidence_score: float = MIN_EVIDENCE_SCORE,
        citation_margin: float = CITATION_MARGIN,
        verifier: VerifierMode | SupportModel = "rules",
    ) -> None:
        for name, value in (
            ("threshold", threshold),
            ("lexical_weight", lexical_weight),
            ("key_term_penalty", key_term_penalty),
            ("citation_margin", citation_margin),
        ):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, not {value}")
        if not -1.0 <= semantic_floor < 1.0:
            raise ConfigError(f"semantic_floor must be in [-1, 1), not {semantic_floor}")
        if not -1.0 <= min_evidence_score <= 1.0:
            raise ConfigError(
                f"min_evidence_score must be between -1 and 1, not {min_evidence_score}"
            )
        self.embed: Embed = (
            embed if isinstance(embed, RememberingEmbed) else RememberingEmbed(embed)
        )
        self.threshold = threshold
        self.lexical_weight = lexical_weight
        self.semantic_floor = semantic_floor
        self.key_term_penalty = key_term_penalty
        self.min_evidence_score = min_evidence_score
        self.citation_margin = citation_margin
        # The trained verifier decides support and answerability; None: the hand-set rules.
        self.verifier: SupportModel | None = (
            shared_verifier() if verifier == "model" else None if verifier == "rules" else verifier  # type: ignore[assignment]
        )
        self._scores: OrderedDict[tuple[str, str], float] = OrderedDict()

    # -- support of claims --------------------------------------------------------------------

    def score(self, claim: str, evidence: str) -> float:
        """Support of one claim sentence by one evidence text, from 0 (none) to 1 (copied)."""
        ((signals,),) = self.signals([Claim.from_sentence(claim)], [evidence])
        return self.support(signals)

    def judge(self, knowledge: str, answer: str, question: str | None = None) -> tuple[bool, float]:
        """Whether `knowledge` supports `answer` (to `question`), and the support score.

        Made for HaluEval-style rows, where answers are often bare phrases ("Delhi").
        """
        if self.verifier is not None:
            claim = Claim.from_answer(answer, question)
            windows = evidence_windows(knowledge) or [knowledge]
            second = claim_text(strip_markers(answer), question)
            best = max(self._verify([(window, second) for window in windows]))
            if KEY_TERM_VETO and not claim.key_terms <= frozenset(content_words(knowledge)):
                best = 0.0
            return best >= self.verifier.thresholds.support, best
        ((signals,),) = self.signals([Claim.from_answer(answer, question)], [knowledge])
        support = self.support(signals)
        return support >= self.threshold, support

    def support(self, signals: SupportSignals) -> float:
        """The support score of some signals under this checker's weights."""
        return combine_signals(
            signals, self.lexical_weight, self.semantic_floor, self.key_term_penalty
        )

    def signals(
        self, claims: Sequence[Claim], evidence_texts: Sequence[str]
    ) -> list[list[SupportSignals]]:
        """Signals for every (claim, evidence) pair: result[claim][evidence]. One embed call."""
        evidence = self._prepare(evidence_texts, [claim.text for claim in claims])
        claim_vectors, prepared = evidence
        return [
            [self._signals(claim, vector, item) for item in prepared]
            for claim, vector in zip(claims, claim_vectors, strict=True)
        ]

    def _prepare(
        self, evidence_texts: Sequence[str], claim_texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.floating], list[_Evidence]]:
        units = [evidence_units(text) for text in evidence_texts]
        flat = [unit for text_units in units for unit in text_units]
        vectors = np.asarray(self.embed([*claim_texts, *flat]), dtype=np.float32)
        prepared = []
        position = len(claim_texts)
        for text, text_units in zip(evidence_texts, units, strict=True):
            block = vectors[position : position + len(text_units)]
            prepared.append(_Evidence(frozenset(content_words(text)), block))
            position += len(text_units)
        return vectors[: len(claim_texts)], prepared

    @staticmethod
    def _signals(
        claim: Claim, vector: npt.NDArray[np.floating], evidence: _Evidence
    ) -> SupportSignals:
        lexical = len(claim.words & evidence.words) / len(claim.words) if claim.words else 0.0
        semantic = float(np.max(evidence.vectors @ vector)) if len(evidence.vectors) else 0.0
        return SupportSignals(lexical, semantic, not claim.key_terms <= evidence.words)

    # -- the trained verifier ------------------------------------------------------------------

    def model_support(
        self, claims: Sequence[Claim], evidence_texts: Sequence[str]
    ) -> list[list[float]]:
        """The trained verifier's support of every claim by every text: result[claim][text].

        Each claim is scored against the `WINDOWS_PER_CLAIM` evidence windows closest to it by
        embedding cosine (all claims in one batch); a text without such a window scores 0. A
        text's score is its best window's."""
        self._require_verifier()
        result = [[0.0] * len(evidence_texts) for _ in claims]
        windows = [
            (number, window)
            for number, text in enumerate(evidence_texts)
            for window in evidence_windows(text)
        ]
        if not windows or not claims:
            return result
        vectors = np.asarray(
            self.embed([*(claim.text for claim in claims), *(window for _, window in windows)]),
            dtype=np.float32,
        )
        window_vectors = vectors[len(claims) :]
        pairs: list[tuple[str, str]] = []
        owners: list[tuple[int, int]] = []
        for index, (claim, vector) in enumerate(zip(claims, vectors, strict=False)):
            closest = np.argsort(-(window_vectors @ vector), kind="stable")[:WINDOWS_PER_CLAIM]
            for position in closest:
                number, window = windows[int(position)]
                pairs.append((window, claim_text(claim.text)))
                owners.append((index, number))
        words = [frozenset(content_words(text)) for text in evidence_texts]
        for (index, number), score in zip(owners, self._verify(pairs), strict=True):
            if KEY_TERM_VETO and not claims[index].key_terms <= words[number]:
                score = 0.0
            result[index][number] = max(result[index][number], score)
        return result

    def answerability(self, question: str, passages: Sequence[Passage]) -> float:
        """How well the passages answer the question, by the trained verifier, 0..1: its best
        score over the `WINDOWS_PER_QUESTION` windows closest to the question by cosine."""
        verifier = self._require_verifier()
        windows = [window for passage in passages for window in evidence_windows(passage.text)]
        if not windows:
            return 0.0
        vectors = np.asarray(self.embed([question, *windows]), dtype=np.float32)
        closest = np.argsort(-(vectors[1:] @ vectors[0]), kind="stable")[:WINDOWS_PER_QUESTION]
        return verifier.answerable(question, [windows[int(position)] for position in closest])

    def quote_answerability(self, question: str, quotes: Sequence[str]) -> float:
        """How well the quoted sentences by themselves answer the question, by the trained
        verifier, 0..1: the best of the quotes read together (as the answer shows them) and,
        when there are several, each on its own. 0.0 without quotes."""
        verifier = self._require_verifier()
        texts = [" ".join(quote.split()) for quote in quotes if quote.strip()]
        if not texts:
            return 0.0
        windows = [" ".join(texts), *texts] if len(texts) > 1 else texts
        return verifier.answerable(question, windows)

    def quotes_answer(self, question: str, quotes: Sequence[str]) -> bool:
        """Whether quotes may stand in for the model's answer: always under the rules (which
        pick quotes by their own score), and with the trained verifier only when it finds that
        the quotes answer the question (`QUOTE_ANSWERABLE_THRESHOLD`). The passages answering
        it is not enough: a quote is an on-topic sentence, not necessarily the answer."""
        if self.verifier is None:
            return True
        return self.quote_answerability(question, quotes) >= QUOTE_ANSWERABLE_THRESHOLD

    def _verify(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The verifier's scores of (window, claim) pairs, remembered (least recently used out):
        the checks while streaming and the final one score the same sentences."""
        verifier = self._require_verifier()
        missing = list(dict.fromkeys(pair for pair in pairs if pair not in self._scores))
        if missing:
            for pair, score in zip(missing, verifier.support(missing), strict=True):
                self._scores[pair] = score
        scores = []
        for pair in pairs:
            self._scores.move_to_end(pair)
            scores.append(self._scores[pair])
        while len(self._scores) > max(SCORE_CACHE_SIZE, len(pairs)):
            self._scores.popitem(last=False)
        return scores

    def _require_verifier(self) -> SupportModel:
        if self.verifier is None:
            raise ConfigError("this support checker runs the hand-set rules, not the verifier")
        return self.verifier

    # -- evidence for a question --------------------------------------------------------------

    def evidence_score(self, question: str, passages: Sequence[Passage]) -> float:
        """How closely the best passage relates to the question: the best cosine similarity
        between the question and any passage, sentence or pair of sentences; -1.0 without
        passages. Retrieval scores are not used because they differ by retrieval mode (RRF
        scores are ranks, not similarities)."""
        if not passages:
            return -1.0
        question_vectors, prepared = self._prepare(
            [passage.text for passage in passages], [question]
        )
        return max(float(np.max(item.vectors @ question_vectors[0])) for item in prepared)

    def evidence_is_weak(self, question: str, passages: Sequence[Passage]) -> bool:
        """Whether the passages are too far from the question to answer it (abstain early):
        `evidence_score(question, passages) < min_evidence_score`, decided in stages.

        This runs before the answer's first token, so it embeds the passages' sentences first
        and stops there when one of them is close enough; only otherwise does it embed the whole
        passages, then the pairs of sentences (the answer's check embeds the rest later)."""
        if not passages:
            return True
        stages = zip(*(_unit_stages(passage.text) for passage in passages), strict=True)
        for stage in stages:
            units = [unit for passage_units in stage for unit in passage_units]
            if not units:
                continue
            vectors = np.asarray(self.embed([question, *units]), dtype=np.float32)
            if float(np.max(vectors[1:] @ vectors[0])) >= self.min_evidence_score:
                return False
        return True

    @staticmethod
    def missing_terms(question: str, passages: Sequence[Passage]) -> list[str]:
        """The names, acronyms and numbers of the question (`question_terms`) that no passage
        mentions, in its text or heading: as the question spells them, in order.

        Accents do not count: "Boleslaw" is found in "Bolesław". On the sample-corpus and
        SQuAD 2.0 sets, the answered questions with such a term were all unanswerable (11 of 11:
        the documents are about something else, "What did the Chinchilla paper find?" over
        documents that never name it); see evals/README.md.
        """
        passages_text = " ".join(f"{passage.heading}\n{passage.text}" for passage in passages)
        mentioned = set(content_words(_fold(passages_text)))
        missing = (
            word for term, word in question_terms(question).items() if _fold(term) not in mentioned
        )
        return list(dict.fromkeys(missing))  # "NF4" once, though both "nf" and "4" are missing

    # -- whole answers ------------------------------------------------------------------------

    def check(
        self,
        answer: str,
        passages: Sequence[Passage],
        *,
        unsupported: str = "flag",
        question: str | None = None,
    ) -> GroundedAnswer:
        """Check every sentence of `answer` against `passages` (numbered 1.. in this order).

        Supported sentences get the passages that support them as citations (the best one and any
        within `citation_margin` of it that also pass the threshold), whatever the model wrote.
        Unsupported ones are kept without citations ("flag") or removed ("drop"). We abstain when
        no sentence is supported or, if `question` is given, when the evidence is weak.
        """
        if unsupported not in UNSUPPORTED_MODES:
            raise ConfigError(f"unsupported must be flag or drop, not {unsupported!r}")
        spans = [
            (start, end)
            for start, end in sentence_spans(answer)
            if strip_markers(answer[start:end])
        ]
        texts = [strip_markers(answer[start:end]) for start, end in spans]
        claim_flags = [is_claim(text) for text in texts]
        claims = [
            Claim.from_sentence(text) for text, flag in zip(texts, claim_flags, strict=True) if flag
        ]
        if not passages:
            return self._abstain(
                GroundingReason.NO_PASSAGES, answer, self._unchecked(answer, spans, claim_flags)
            )
        if self.verifier is not None:
            rows = self.model_support(claims, [passage.text for passage in passages])
            threshold = self.verifier.thresholds.support
            verdicts = iter([self._decide(row, threshold) for row in rows])
            evidence_score = self.answerability(question, passages) if question else None
            min_evidence = self.verifier.thresholds.answerable
            weak = GroundingReason.UNANSWERED
        else:
            queries = [question] if question else []
            vectors, prepared = self._prepare(
                [passage.text for passage in passages],
                [*queries, *(claim.text for claim in claims)],
            )
            evidence_score = (
                max(float(np.max(item.vectors @ vectors[0])) for item in prepared)
                if question
                else None
            )
            verdicts = iter(
                self._verdict(claim, vector, prepared)
                for claim, vector in zip(claims, vectors[len(queries) :], strict=True)
            )
            min_evidence, weak = self.min_evidence_score, GroundingReason.WEAK_RETRIEVAL
        checks: list[SentenceCheck] = []
        for (start, end), text, flag in zip(spans, texts, claim_flags, strict=True):
            model_citations = cited_numbers(answer[start:end], len(passages))
            supported, citations, score = next(verdicts) if flag else (False, (), 0.0)
            dropped = flag and not supported and unsupported == "drop"
            display = "" if dropped else render_sentence(text, citations)
            checks.append(
                SentenceCheck(text, supported, citations, model_citations, score, flag, display)
            )
        if evidence_score is not None and evidence_score < min_evidence:
            return self._abstain(weak, answer, checks, evidence_score)
        if not any(check.supported for check in checks):
            return self._abstain(
                GroundingReason.NO_SUPPORTED_SENTENCE, answer, checks, evidence_score
            )
        return GroundedAnswer(
            answer=_assemble(answer, spans, [check.display for check in checks]),
            abstained=False,
            reason=None,
            sentences=tuple(checks),
            raw_answer=answer,
            evidence_score=evidence_score,
        )

    def _verdict(
        self, claim: Claim, vector: npt.NDArray[np.floating], prepared: Sequence[_Evidence]
    ) -> tuple[bool, tuple[int, ...], float]:
        scores = [self.support(self._signals(claim, vector, item)) for item in prepared]
        return self._decide(scores, self.threshold)

    def _decide(
        self, scores: Sequence[float], threshold: float
    ) -> tuple[bool, tuple[int, ...], float]:
        """(supported, citations, best score) from a claim's score for each passage: supported
        when the best reaches `threshold`, citing every passage within `citation_margin` of it."""
        best = max(scores)
        if best < threshold:
            return False, (), best
        cutoff = max(threshold, best - self.citation_margin)
        return (
            True,
            tuple(number for number, score in enumerate(scores, 1) if score >= cutoff),
            best,
        )

    @staticmethod
    def _unchecked(
        answer: str, spans: Sequence[tuple[int, int]], claim_flags: Sequence[bool]
    ) -> list[SentenceCheck]:
        return [
            SentenceCheck(strip_markers(answer[start:end]), False, (), (), 0.0, flag, "")
            for (start, end), flag in zip(spans, claim_flags, strict=True)
        ]

    @staticmethod
    def _abstain(
        reason: GroundingReason,
        answer: str,
        checks: Sequence[SentenceCheck],
        evidence_score: float | None = None,
    ) -> GroundedAnswer:
        return GroundedAnswer(
            answer=ABSTAIN_MESSAGE,
            abstained=True,
            reason=reason,
            sentences=tuple(checks),
            raw_answer=answer,
            evidence_score=evidence_score,
        )


def _assemble(answer: str, spans: Sequence[tuple[int, int]], displays: Sequence[str]) -> str:
    """The answer with each sentence replaced by its display text, keeping the layout (line
    breaks, list bullets) between sentences; lines left empty by dropped sentences go away."""
    pieces: list[str] = []
    position = 0
    for (start, end), display in zip(spans, displays, strict=True):
        pieces.append(answer[position:start])
        pieces.append(display)
        position = end
    pieces.append(answer[position:])
    lines = []
    for line in "".join(pieces).split("\n"):
        if line.strip() and not BULLET.fullmatch(line + " "):
            lines.append(re.sub(r"(?<=\S)[ \t]{2,}", " ", line).rstrip())
        elif not line.strip():
            lines.append("")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
