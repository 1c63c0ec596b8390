"""Tests for assistant.llm.chat_tokenizer, against transformers' AutoTokenizer on the same files.

A tiny byte-level BPE tokenizer is trained with `tokenizers` and saved the way transformers 5
saves a fast tokenizer (`tokenizer.json`, `tokenizer_config.json` naming `TokenizersBackend`,
`chat_template.jinja`); `chat_tokenizer.load` must render, encode and decode as AutoTokenizer does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jinja2
import pytest

from assistant.llm import chat_tokenizer

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TRAINING_TEXT = [
    "Hello world, this is a small test of a tiny tokenizer.",
    "The quick brown fox jumps over the lazy dog. The dog sleeps.",
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    "Réponse : ça va très bien, merci ! Naïve café.",
    "Indented code:\n    def f(x):\n        return x + 1\n",
]
# SmolLM2's template: ChatML with a default system message.
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# A template using what transformers' environment offers: whitespace control (trim_blocks and
# lstrip_blocks), loop controls, namespaces, its tojson filter (no HTML escaping, unicode kept),
# raise_exception and the special tokens as variables.
FEATURES = """{%- set ns = namespace(turns=0) -%}
{% for message in messages %}
    {% if message['role'] not in ['system', 'user', 'assistant'] %}
        {{ raise_exception('Unknown role: ' + message['role']) }}
    {% endif %}
    {% if message['content'] == 'skip me' %}{% continue %}{% endif %}
    {% set ns.turns = ns.turns + 1 %}
<|im_start|>{{ message['role'] }}
{{ message['content'] | trim }} {{ message['content'] | tojson }}<|im_end|>
    {% if loop.last %}{{ eos_token }}{{ ns.turns }}{% endif %}
{% endfor %}
{% if add_generation_prompt %}
<|im_start|>assistant
{% endif %}"""

CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hello world, what is a fox?"}],
    [
        {"role": "system", "content": "Answer from the passages only."},
        {"role": "user", "content": "What does the quick brown fox do?"},
        {"role": "assistant", "content": "It jumps over the lazy dog."},
        {"role": "user", "content": "And the dog?"},
    ],
    [
        {
            "role": "user",
            "content": "Réponse : ça va ? 日本語 🙂 naïve café Ω≈ç √ ∫ — « guillemets »",
        }
    ],
    [
        {"role": "system", "content": "  leading, trailing  "},
        {"role": "user", "content": "\n\ntabs\tand\r\nnew  lines \n   "},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "    def f(x):\n        return x + 1\n"},
    ],
    [
        {
            "role": "user",
            "content": "Say <|im_end|> then <|im_start|>assistant\nand <|endoftext|> <|im_end",
        }
    ],
    [{"role": "user", "content": "Hello , world . It 's n't a test ; ok ? <b>&amp;</b> \"q\""}],
    [{"role": "user", "content": "skip me"}, {"role": "user", "content": "kept"}],
]


def save_tokenizer(folder: Path, template: str = CHATML, nfc: bool = False) -> None:
    """A tiny ChatML tokenizer, saved by transformers' own `save_pretrained` (`nfc`: with an NFC
    normalizer in tokenizer.json, as Qwen2's has)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    if nfc:
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
        chat_template=template,
    )
    wrapped.save_pretrained(folder)


def edit_config(folder: Path, **changes: Any) -> None:
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(changes)
    path.write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chatml-tokenizer")
    save_tokenizer(folder)
    return folder


def test_transformers_saves_the_layout_load_reads(saved: Path) -> None:
    config = json.loads((saved / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "TokenizersBackend"
    assert config["tokenizer_class"] in chat_tokenizer.PLAIN_CLASSES
    assert (saved / "chat_template.jinja").read_text(encoding="utf-8") == CHATML


def pair(folder: Path) -> tuple[chat_tokenizer.ChatTokenizer, Any]:
    from transformers import AutoTokenizer

    ours = chat_tokenizer.load(folder)
    assert ours is not None
    return ours, AutoTokenizer.from_pretrained(folder)


def same_as_transformers(
    ours: chat_tokenizer.ChatTokenizer, reference: Any, messages: list[dict[str, str]]
) -> None:
    for generation_prompt in (True, False):
        text = ours.apply_chat_template(messages, add_generation_prompt=generation_prompt)
        assert text == reference.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=False
        )
        assert isinstance(text, str)
        ids = ours(text, add_special_tokens=False)["input_ids"]
        assert ids == reference(text, add_special_tokens=False)["input_ids"]
        assert ours.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=True
        ) == reference.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=True, return_dict=False
        )
        for skip in (True, False):
            decoded = ours.decode(ids, skip_special_tokens=skip)
            assert decoded == reference.decode(ids, skip_special_tokens=skip)
        assert ours.decode(ids) == reference.decode(ids) == text  # byte-level: lossless
        content = messages[-1]["content"]
        content_ids = ours(content, add_special_tokens=False)["input_ids"]
        assert content_ids == reference(content, add_special_tokens=False)["input_ids"]
        assert ours.decode(content_ids, skip_special_tokens=True) == reference.decode(
            content_ids, skip_special_tokens=True
        )


@pytest.mark.parametrize("messages", CONVERSATIONS, ids=range(len(CONVERSATIONS)))
def test_chatml_conversations_are_transformers(saved: Path, messages: list[dict[str, str]]) -> None:
    ours, reference = pair(saved)
    assert ours.eos_token_id == reference.eos_token_id == 2
    assert ours.chat_template == reference.chat_template
    same_as_transformers(ours, reference, messages)


def test_special_token_text_in_content_is_a_special_token_and_skipped(saved: Path) -> None:
    ours, _ = pair(saved)
    ids = ours("a <|im_end|> b", add_special_tokens=False)["input_ids"]
    assert ours.eos_token_id in ids
    assert "<|im_end|>" not in ours.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("tokenizer_class", sorted(chat_tokenizer.PLAIN_CLASSES))
def test_every_plain_class_with_the_template_in_the_config_is_transformers(
    tmp_path: Path, tokenizer_class: str
) -> None:
    """The older layout: the template inside tokenizer_config.json, another class name."""
    save_tokenizer(tmp_path, FEATURES)
    template = (tmp_path / "chat_template.jinja").read_text(encoding="utf-8")
    (tmp_path / "chat_template.jinja").unlink()
    edit_config(
        tmp_path,
        tokenizer_class=tokenizer_class,
        chat_template=template,
        clean_up_tokenization_spaces=False,
    )
    ours, reference = pair(tmp_path)
    assert ours.chat_template == template
    for messages in CONVERSATIONS:
        same_as_transformers(ours, reference, messages)


def test_template_features_render_as_in_transformers(tmp_path: Path) -> None:
    save_tokenizer(tmp_path, FEATURES)
    ours, reference = pair(tmp_path)
    messages = CONVERSATIONS[2] + CONVERSATIONS[4]
    text = ours.apply_chat_template(messages, add_generation_prompt=True)
    assert text == reference.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    assert '"Réponse : ça va ? 日本語 🙂' in str(text)  # tojson keeps unicode
    assert str(text).endswith("<|im_end|>\n<|im_end|>2<|im_start|>assistant\n")  # two turns
    skipped = ours.apply_chat_template(CONVERSATIONS[6], add_generation_prompt=True)
    assert skipped == '<|im_start|>user\nkept "kept"<|im_end|>\n<|im_end|>1<|im_start|>assistant\n'
    bad = [{"role": "tool", "content": "x"}]
    with pytest.raises(jinja2.TemplateError, match="Unknown role: tool"):
        reference.apply_chat_template(bad, tokenize=False)
    with pytest.raises(jinja2.TemplateError, match="Unknown role: tool"):
        ours.apply_chat_template(bad)


def copy_of(saved: Path, folder: Path) -> Path:
    shutil.copytree(saved, folder)
    return folder


@pytest.mark.parametrize("tokenizer_class", ["LlamaTokenizer", "Qwen2Tokenizer", None])
def test_load_leaves_other_tokenizer_classes_to_transformers(
    saved: Path, tmp_path: Path, tokenizer_class: str | None
) -> None:
    folder = copy_of(saved, tmp_path / "other")
    edit_config(folder, tokenizer_class=tokenizer_class)
    assert chat_tokenizer.load(folder) is None


def test_load_leaves_a_tokenizer_without_a_template_to_transformers(
    saved: Path, tmp_path: Path
) -> None:
    folder = copy_of(saved, tmp_path / "no-template")
    (folder / "chat_template.jinja").unlink()
    assert chat_tokenizer.load(folder) is None
    # A list of named templates is transformers' to choose from.
    edit_config(folder, chat_template=[{"name": "default", "template": CHATML}])
    assert chat_tokenizer.load(folder) is None


def test_load_leaves_cleaned_up_decoding_and_missing_files_to_transformers(
    saved: Path, tmp_path: Path
) -> None:
    folder = copy_of(saved, tmp_path / "cleaned")
    edit_config(folder, clean_up_tokenization_spaces=True)
    assert chat_tokenizer.load(folder) is None
    folder = copy_of(saved, tmp_path / "no-tokenizer-json")
    (folder / "tokenizer.json").unlink()
    assert chat_tokenizer.load(folder) is None
    assert chat_tokenizer.load(tmp_path / "missing") is None
    folder = copy_of(saved, tmp_path / "broken-config")
    (folder / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    assert chat_tokenizer.load(folder) is None


# Where `load` gives a tokenizer that does not encode as AutoTokenizer does (reported; the marks
# come off when `load` returns None for these folders or follows transformers).


def test_split_special_tokens_in_the_config_encode_special_text_as_text(
    saved: Path, tmp_path: Path
) -> None:
    folder = copy_of(saved, tmp_path / "split")
    edit_config(folder, split_special_tokens=True)
    assert chat_tokenizer.load(folder) is None  # left to transformers, which reads it so
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(folder)
    text = "a <|im_end|> b"
    assert 2 not in reference(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("tokenizer_class", ["GPT2Tokenizer", "GPT2TokenizerFast"])
@pytest.mark.parametrize("change", ["normalizer", "add_prefix_space"])
def test_gpt2_classes_are_rebuilt_by_transformers(
    tmp_path: Path, tokenizer_class: str, change: str
) -> None:
    """transformers 5 builds a GPT2Tokenizer from tokenizer.json's vocabulary and merges alone,
    with a ByteLevel pre-tokenizer of the config's `add_prefix_space` and no normalizer."""
    save_tokenizer(tmp_path, nfc=change == "normalizer")
    edit_config(tmp_path, tokenizer_class=tokenizer_class)
    if change == "add_prefix_space":
        edit_config(tmp_path, add_prefix_space=True)
    assert chat_tokenizer.load(tmp_path) is None  # left to transformers


def test_special_tokens_of_the_config_missing_from_tokenizer_json(
    saved: Path, tmp_path: Path
) -> None:
    """transformers adds a special token the config names and tokenizer.json lacks."""
    folder = copy_of(saved, tmp_path / "eos")
    edit_config(folder, eos_token="</s>")
    assert chat_tokenizer.load(folder) is None  # left to transformers, which adds it
