"""A chat model's tokenizer and chat template, read with `tokenizers` and `jinja2` alone.

transformers' AutoTokenizer costs a second of imports before `assistant ask` can count or
encode a prompt. For a model folder in transformers' layout whose tokenizer is a plain fast
tokenizer (`tokenizer.json`, with no Python-side rules of its own), the ids come from the
`tokenizers` library that AutoTokenizer wraps, and the prompt from the chat template rendered
as transformers renders it (a sandboxed jinja2 environment with the same options, filters and
globals). tests/unit/test_llm_chat_tokenizer.py checks both against AutoTokenizer. Anything
else loads through transformers (`load` returns None).

It offers what the engines use of a tokenizer: `tokenizer(text, add_special_tokens=False)`,
`apply_chat_template(messages, add_generation_prompt=True, tokenize=False)`, `decode(ids,
skip_special_tokens=True)`, `eos_token_id` and `chat_template`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

# tokenizer_config.json classes that are `tokenizer.json` and nothing more. (transformers 5
# rebuilds a GPT2Tokenizer from the vocabulary and merges with a pre-tokenizer of its own.)
PLAIN_CLASSES = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


class ChatTokenizer:
    """A fast tokenizer and its chat template (build it with `load`)."""

    def __init__(
        self, tokenizer: Tokenizer, chat_template: str, special: Mapping[str, str]
    ) -> None:
        self._tokenizer = tokenizer
        self.chat_template = chat_template
        self._special = dict(special)
        self._template = _compile(chat_template)
        eos = special.get("eos_token")
        self.eos_token_id: int | None = None if eos is None else tokenizer.token_to_id(eos)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        encoding = self._tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return {"input_ids": list(encoding.ids)}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool = False,
        tokenize: bool = False,
    ) -> str | list[int]:
        text = self._template.render(
            messages=[dict(message) for message in messages],
            tools=None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            **self._special,
        )
        return self(text, add_special_tokens=False)["input_ids"] if tokenize else str(text)


def load(folder: Path) -> ChatTokenizer | None:
    """The tokenizer of a model folder in transformers' layout, or None when it needs
    transformers (no `tokenizer.json`, a tokenizer class with rules of its own, no template, or
    a template this environment cannot compile)."""
    import jinja2

    tokenizer_file, config_file = folder / "tokenizer.json", folder / "tokenizer_config.json"
    if not (tokenizer_file.is_file() and config_file.is_file()):
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if config.get("tokenizer_class") not in PLAIN_CLASSES:
            return None
        if config.get("clean_up_tokenization_spaces") or config.get("split_special_tokens"):
            return None  # transformers edits decoded text, or encodes special tokens as text
        template = _template(folder, config)
        if template is None:
            return None
        special = {name: _token_text(config[name]) for name in SPECIAL_TOKENS if config.get(name)}
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        if any(tokenizer.token_to_id(text) is None for text in special.values()):
            return None  # transformers adds the special tokens tokenizer.json lacks
        return ChatTokenizer(tokenizer, template, special)
    except (OSError, ValueError, KeyError, TypeError, jinja2.TemplateError):
        return None


def _template(folder: Path, config: Mapping[str, Any]) -> str | None:
    template_file = folder / "chat_template.jinja"
    if template_file.is_file():
        return template_file.read_text(encoding="utf-8")
    template = config.get("chat_template")
    return template if isinstance(template, str) else None  # named templates: transformers


def _token_text(value: Any) -> str:
    """A special token as tokenizer_config.json holds it: a string or an AddedToken dict."""
    return str(value["content"] if isinstance(value, Mapping) else value)


def _compile(template: str) -> Any:
    """The template in the environment transformers renders chat templates in."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    return environment.from_string(template)
