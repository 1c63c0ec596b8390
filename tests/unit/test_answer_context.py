"""Tests for assistant.answer.context: the prompt always fits, and parts give way in priority order.

Token counting is faked: one token per whitespace-separated word, and every chat message costs
MESSAGE_OVERHEAD more (plus PROMPT_OVERHEAD once), like a chat template would.
"""

import dataclasses
import random
from collections.abc import Mapping, Sequence

import pytest

from assistant.answer.context import (
    SUMMARY_HEADING,
    Budget,
    ContextWindow,
    Prompt,
    Turn,
    format_passage,
    render_user,
)
from assistant.answer.memory import turn_tokens, turns_to_fold
from assistant.errors import ConfigError, InputError
from assistant.index.passage import Passage

MESSAGE_OVERHEAD = 4
PROMPT_OVERHEAD = 3
VOCABULARY_TEXT = (
    "tower iron paris height metres built engineer gustave eiffel visitors steel rivets lattice "
    "structure opened exposition summit antenna paint tonnes design public river city view"
)
VOCABULARY = VOCABULARY_TEXT.split()


def count_tokens(text: str) -> int:
    return len(text.split())


def count_messages(messages: Sequence[Mapping[str, str]]) -> int:
    return sum(count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages) + PROMPT_OVERHEAD


def window(
    context_length: int = 1000, answer_reserve: int = 100, **options: object
) -> ContextWindow:
    return ContextWindow(
        count_tokens,
        count_messages,
        context_length=context_length,
        answer_reserve=answer_reserve,
        **options,  # type: ignore[arg-type]
    )


def sentence(rng: random.Random, low: int = 3, high: int = 12) -> str:
    words = [rng.choice(VOCABULARY) for _ in range(rng.randint(low, high))]
    return " ".join([words[0].capitalize(), *words[1:]]) + "."


def text(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def passage(rank: int, body: str, heading: str = "") -> Passage:
    return Passage(
        chunk_id=rank,
        text=body,
        source=f"docs/doc{rank}.md",
        start_line=1,
        end_line=5,
        page=None,
        heading=heading,
        score=1.0 / rank,
        rank=rank,
    )


def words(count: int, word: str = "word") -> str:
    return " ".join([word] * count)


def history_of(prompt: Prompt) -> list[tuple[str, str]]:
    body = prompt.messages[1:-1] if prompt.messages[0]["role"] == "system" else prompt.messages[:-1]
    assert [m["role"] for m in body] == ["user", "assistant"] * (len(body) // 2)
    return [(body[i]["content"], body[i + 1]["content"]) for i in range(0, len(body), 2)]


def minimal_prompt_tokens(system: str, question: str) -> int:
    """What system + question alone cost under the fake template."""
    system_cost = count_tokens(system) + MESSAGE_OVERHEAD if system else 0
    return system_cost + count_tokens(f"Question: {question}") + MESSAGE_OVERHEAD + PROMPT_OVERHEAD


# --------------------------------------------------------------------------------------------
# The property test: many random shapes, the budget always holds, priorities always hold
# --------------------------------------------------------------------------------------------


def test_random_prompts_fit_the_window_and_respect_priorities() -> None:
    rng = random.Random(20240601)
    outcomes = dict.fromkeys(
        ["fitted", "question too long", "system too long", "trimmed", "older kept", "latest out"], 0
    )
    outcomes["room checked"] = 0
    for _ in range(500):
        context_length = rng.randint(40, 1500)
        answer_reserve = rng.randint(0, context_length // 2)
        share = rng.choice([0.0, 0.1, 0.25, 0.5, 1.0])
        system = text(rng, rng.choice([0, 1, 3, 8]))
        question = text(rng, rng.choice([1, 1, 2, 5, 40]))
        passages = [passage(r, text(rng, rng.randint(1, 12)), "Intro") for r in range(1, 8)]
        passages = passages[: rng.randint(0, 7)]
        summary = text(rng, rng.choice([0, 0, 2, 6]))
        turns = [Turn(text(rng, rng.randint(1, 3)), text(rng, rng.randint(1, 8))) for _ in range(9)]
        turns = turns[: rng.randint(0, 9)]
        context = window(context_length, answer_reserve, history_share=share)
        available = context_length - answer_reserve
        try:
            prompt = context.assemble(
                system=system, question=question, passages=passages, summary=summary, turns=turns
            )
        except InputError as error:
            assert minimal_prompt_tokens(system, question) > available
            assert f"Your question is {count_tokens(question)} tokens" in str(error)
            outcomes["question too long"] += 1
            continue
        except ConfigError:
            assert minimal_prompt_tokens(system, "") >= available
            outcomes["system too long"] += 1
            continue
        outcomes["fitted"] += 1
        budget = prompt.budget

        # Never over the window; the budget's total is the message counter's own figure.
        assert budget.total == count_messages(prompt.messages) <= available
        assert (budget.window, budget.reserved_answer) == (context_length, answer_reserve)
        assert budget.free >= 0

        # System prompt and question are always there.
        assert prompt.messages[-1]["role"] == "user"
        assert prompt.messages[-1]["content"].endswith(f"Question: {question}")
        if system:
            assert prompt.messages[0] == {
                "role": "system",
                "content": prompt.messages[0]["content"],
            }
            assert prompt.messages[0]["content"].startswith(system)
        assert budget.question == count_tokens(question)

        # History is the newest turns verbatim; the folded ones are the oldest.
        kept = turns[prompt.folded_turns :]
        assert history_of(prompt) == [(t.question, t.answer) for t in kept]
        assert budget.recent == sum(turn_tokens(t, count_tokens) for t in kept)

        # The latest turn gives way only when it cannot fit even without passages.
        if turns and not kept:
            outcomes["latest out"] += 1
            latest = turns[-1]
            alone = minimal_prompt_tokens(system, question) + 2 * MESSAGE_OVERHEAD
            assert alone + turn_tokens(latest, count_tokens) > available

        # Passages: a prefix of the ranking; only the last may be trimmed, at a sentence end.
        included = prompt.passages
        assert prompt.dropped_passages == len(passages) - len(included)
        assert list(included[:-1]) == passages[: max(0, len(included) - 1)]
        trimmed = bool(included) and included[-1] != passages[len(included) - 1]
        if trimmed:
            outcomes["trimmed"] += 1
            original = passages[len(included) - 1]
            assert dataclasses.replace(included[-1], text=original.text) == original
            assert original.text.startswith(included[-1].text)
            assert included[-1].text.endswith(".")
            assert len(included[-1].text) < len(original.text)
        user = prompt.messages[-1]["content"]
        for number, shown in enumerate(included, 1):
            assert format_passage(number, shown) in user

        # The bounds the answerer searches and checks by leave out nothing that was included.
        room = context.passage_room(system=system, question=question, turns=turns)
        within = context.passages_within(passages, room)
        assert within == passages[: len(within)] and len(included) <= len(within)
        assert len(included) <= context.most_passages(room)

        # Older turns come after passages and the summary, and stay within the history share.
        if len(kept) >= 2:
            outcomes["older kept"] += 1
            assert len(included) == len(passages) and not trimmed
            if summary:
                assert prompt.messages[0]["content"].endswith(f"{SUMMARY_HEADING}\n{summary}")
            share_tokens = int(share * available) - count_tokens(summary)
            assert sum(turn_tokens(t, count_tokens) for t in kept) <= share_tokens
        assert (budget.summary > 0) == (SUMMARY_HEADING in prompt.messages[0]["content"])

        # Nothing is given up while there is room for it (checked where nothing follows passages).
        if not summary and len(kept) <= 1 and (trimmed or len(included) < len(passages)):
            if trimmed:
                rest = passages[len(included) - 1].text[len(included[-1].text) :]
                next_piece = count_tokens(sentence_of(rest))
            else:
                candidate = passages[len(included)]
                first = dataclasses.replace(candidate, text=sentence_of(candidate.text))
                next_piece = count_tokens(format_passage(len(included) + 1, first))
            assert budget.free < next_piece
            outcomes["room checked"] += 1
    assert min(outcomes.values()) >= 5, outcomes  # every branch was exercised


def sentence_of(text: str) -> str:
    """The first sentence of generated text (they all end with a full stop)."""
    return text.strip().split(".")[0] + "."


# --------------------------------------------------------------------------------------------
# Targeted cases
# --------------------------------------------------------------------------------------------


def test_question_longer_than_the_window_raises_a_clear_input_error() -> None:
    context = window(100, 20)
    with pytest.raises(InputError) as caught:
        context.assemble(
            system="You are helpful.", question=words(200), passages=[], summary="", turns=[]
        )
    room = 80 - minimal_prompt_tokens("You are helpful.", "")
    message = f"Your question is 200 tokens; the model's window leaves room for {room}. Shorten it."
    assert str(caught.value) == message


def test_question_that_just_fits_is_kept_whole() -> None:
    context = window(100, 20)
    room = 80 - minimal_prompt_tokens("You are helpful.", "")
    prompt = context.assemble(
        system="You are helpful.", question=words(room), passages=[], summary="", turns=[]
    )
    assert prompt.budget.total == 80
    with pytest.raises(InputError):
        context.assemble(
            system="You are helpful.", question=words(room + 1), passages=[], summary="", turns=[]
        )


def test_empty_question_is_an_input_error() -> None:
    with pytest.raises(InputError, match="empty"):
        window().assemble(system="s", question="  ", passages=[], summary="", turns=[])


def test_system_prompt_filling_the_window_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="system prompt"):
        window(100, 20).assemble(
            system=words(90), question="Why?", passages=[], summary="", turns=[]
        )


@pytest.mark.parametrize(
    ("context_length", "answer_reserve", "share"),
    [(100, 100, 0.25), (100, 200, 0.25), (100, -1, 0.25), (100, 10, 1.5), (100, 10, -0.1)],
)
def test_impossible_settings_are_config_errors(
    context_length: int, answer_reserve: int, share: float
) -> None:
    with pytest.raises(ConfigError):
        window(context_length, answer_reserve, history_share=share)


def test_default_user_message_numbers_passages_with_source_and_heading() -> None:
    shown = render_user(
        "How tall is it?", [passage(1, "It is 330 m tall.", "Tower > Size"), passage(2, "Iron.")]
    )
    assert shown == (
        "[1] (docs/doc1.md, Tower > Size)\nIt is 330 m tall.\n\n"
        "[2] (docs/doc2.md)\nIron.\n\n"
        "Question: How tall is it?"
    )


def test_render_user_can_be_overridden_and_is_counted() -> None:
    def render(question: str, passages: Sequence[Passage]) -> str:
        sources = " ".join(f"<{p.source}> {p.text}" for p in passages)
        return f"Context: {sources}\nAnswer this: {question}"

    prompt = window().assemble(
        system="Be brief.",
        question="How tall?",
        passages=[passage(1, "It is tall.")],
        summary="",
        turns=[],
        render_user=render,
    )
    assert (
        prompt.messages[-1]["content"]
        == "Context: <docs/doc1.md> It is tall.\nAnswer this: How tall?"
    )
    assert prompt.budget.passages == 4  # "<docs/doc1.md> It is tall." adds four words
    assert prompt.budget.total == count_messages(prompt.messages)


def test_messages_are_system_then_history_then_user() -> None:
    turns = [Turn("Who built it?", "Gustave Eiffel [1]."), Turn("When?", "In 1889 [2, 3].")]
    prompt = window().assemble(
        system="Answer from the passages.",
        question="How tall is it?",
        passages=[passage(1, "It is 330 m tall.")],
        summary="The user asked about the Eiffel Tower.",
        turns=turns,
    )
    assert [m["role"] for m in prompt.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert prompt.messages[0]["content"] == (
        f"Answer from the passages.\n\n{SUMMARY_HEADING}\nThe user asked about the Eiffel Tower."
    )
    # Old citation markers pointed at old passages, so history carries answers without them.
    assert prompt.messages[2]["content"] == "Gustave Eiffel."
    assert prompt.messages[4]["content"] == "In 1889."
    assert prompt.folded_turns == 0 and prompt.dropped_passages == 0


def test_passage_room_is_what_the_window_leaves_before_the_passages() -> None:
    context = window(1000, 100)
    empty = context.assemble(system="s", question="q", passages=[], summary="", turns=[])
    room = context.passage_room(system="s", question="q")
    assert room == 900 - empty.budget.total == 900 - minimal_prompt_tokens("s", "q")
    # The latest turn comes before passages; the summary and older turns give way to them.
    turns = [Turn("Who built it?", "Gustave Eiffel."), Turn("When?", "In 1889.")]
    latest = turn_tokens(turns[-1], count_tokens) + 2 * MESSAGE_OVERHEAD
    assert context.passage_room(system="s", question="q", turns=turns) == room - latest


def test_passage_room_refuses_a_question_too_long_as_assemble_does() -> None:
    with pytest.raises(InputError, match="Your question is 200 tokens"):
        window(100, 20).passage_room(system="You are helpful.", question=words(200))


def test_a_hit_list_far_longer_than_the_window_is_cut_to_what_may_fit() -> None:
    context = window(1000, 100)
    hits = [passage(rank, text(random.Random(rank), 4)) for rank in range(1, 10_001)]
    room = context.passage_room(system="s", question="q")
    within = context.passages_within(hits, room)
    prompt = context.assemble(system="s", question="q", passages=within, summary="", turns=[])
    everything = context.assemble(system="s", question="q", passages=hits, summary="", turns=[])
    assert prompt.passages == everything.passages  # the cut changed nothing in the prompt
    assert len(prompt.passages) <= len(within) <= len(prompt.passages) + 3
    assert len(within) <= context.most_passages(room) < len(hits)


def test_the_passage_bound_holds_for_the_smallest_passages() -> None:
    context = window(300, 0)
    tiny = [
        dataclasses.replace(passage(rank, "x"), source="", heading="") for rank in range(1, 500)
    ]
    room = context.passage_room(system="s", question="q")
    prompt = context.assemble(system="s", question="q", passages=tiny, summary="", turns=[])
    assert 0 < len(prompt.passages) <= context.most_passages(room) < len(tiny)


def test_lowest_ranked_passages_are_dropped_first() -> None:
    passages = [passage(rank, words(30, f"p{rank}")) for rank in range(1, 5)]
    base = minimal_prompt_tokens("s", "q")
    block = count_tokens(format_passage(1, passages[0]))
    # Room for two whole passages and a little: the third has no sentence boundary to cut at
    # and its word run would be under minimum_passage_tokens.
    context = window(base + 2 * block + 10, 0)
    prompt = context.assemble(system="s", question="q", passages=passages, summary="", turns=[])
    assert prompt.passages == tuple(passages[:2])
    assert prompt.dropped_passages == 2


def test_passage_is_trimmed_at_a_sentence_boundary() -> None:
    body = "First sentence has five words. Second sentence here also has six. Third one."
    base = minimal_prompt_tokens("s", "q")
    label = count_tokens("[1] (docs/doc1.md)")
    context = window(base + label + 11, 0)
    prompt = context.assemble(
        system="s", question="q", passages=[passage(1, body)], summary="", turns=[]
    )
    assert (
        prompt.passages[0].text
        == "First sentence has five words. Second sentence here also has six."
    )
    assert prompt.passages[0].chunk_id == 1
    assert prompt.budget.free == 0


def test_passage_without_sentence_boundaries_is_cut_between_words_if_worth_it() -> None:
    body = words(100, "token")
    base = minimal_prompt_tokens("s", "q")
    label = count_tokens("[1] (docs/doc1.md)")
    roomy = window(base + label + 40, 0, minimum_passage_tokens=24)
    prompt = roomy.assemble(
        system="s", question="q", passages=[passage(1, body)], summary="", turns=[]
    )
    assert prompt.passages[0].text == words(40, "token")
    cramped = window(base + label + 20, 0, minimum_passage_tokens=24)
    prompt = cramped.assemble(
        system="s", question="q", passages=[passage(1, body)], summary="", turns=[]
    )
    assert prompt.passages == () and prompt.dropped_passages == 1


def test_latest_turn_is_kept_before_passages() -> None:
    latest = Turn(words(10, "question"), words(30, "answer"))
    passages = [passage(1, words(30, "passage"))]
    base = minimal_prompt_tokens("s", "q")
    context = window(base + 2 * MESSAGE_OVERHEAD + 40 + 20, 0)
    prompt = context.assemble(
        system="s", question="q", passages=passages, summary="", turns=[latest]
    )
    assert history_of(prompt) == [(latest.question, latest.answer)]
    assert prompt.passages == ()


def test_older_turns_fold_exactly_when_history_overflows_its_share() -> None:
    turns = [Turn(words(5, f"q{i}"), words(15, f"a{i}")) for i in range(6)]  # 20 tokens each
    for budget in (0, 19, 20, 39, 40, 41, 60, 99, 120):
        context = window(10_000, 0, history_share=budget / 10_000)
        prompt = context.assemble(system="s", question="q", passages=[], summary="", turns=turns)
        expected = len(turns_to_fold(turns, count_tokens, budget))
        assert prompt.folded_turns == expected
        assert prompt.folded_turns == min(5, len(turns) - max(1, budget // 20))


def test_summary_counts_against_the_history_share() -> None:
    turns = [Turn(words(5), words(15)) for _ in range(4)]
    context = window(10_000, 0, history_share=60 / 10_000)
    without = context.assemble(system="s", question="q", passages=[], summary="", turns=turns)
    with_summary = context.assemble(
        system="s", question="q", passages=[], summary=words(20, "summary"), turns=turns
    )
    assert (without.folded_turns, with_summary.folded_turns) == (1, 2)


def test_summary_that_does_not_fit_keeps_its_latest_sentences() -> None:
    summary = "Oldest fact here. Middle fact here. Newest fact here."
    base = minimal_prompt_tokens("s", "q") + count_tokens(SUMMARY_HEADING)
    context = window(base + 7, 0)
    prompt = context.assemble(system="s", question="q", passages=[], summary=summary, turns=[])
    assert prompt.messages[0]["content"].endswith("Middle fact here. Newest fact here.")
    assert prompt.budget.summary == 6


def test_budget_as_dict_and_rows_show_every_part() -> None:
    prompt = window(1000, 100).assemble(
        system="Be brief.",
        question="How tall is it?",
        passages=[passage(1, "It is 330 m tall.")],
        summary="Talked about towers.",
        turns=[Turn("Who built it?", "Eiffel.")],
    )
    shown = prompt.budget.as_dict()
    parts = ("system", "passages", "summary", "recent", "question", "overhead")
    assert shown["total"] == sum(shown[name] for name in parts) == prompt.budget.total
    assert shown["available"] == 900 and shown["free"] == 900 - shown["total"]
    assert shown["system"] == 2 and shown["question"] == 4 and shown["recent"] == 4
    assert shown["summary"] == 3 and shown["passages"] == count_tokens(
        "[1] (docs/doc1.md) It is 330 m tall."
    )
    assert dict(prompt.budget.rows())["total"] == shown["total"]
    assert Budget(100, 10, 1, 2, 3, 4, 5).total == 15
