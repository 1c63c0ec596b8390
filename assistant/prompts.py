"""Prompts are files under `prompts/`, loaded and filled in here and nowhere else.

Keeping the wording in files lets an eval compare prompt versions without touching code. The files
ship inside the package (`assistant/prompts` points at the top-level `prompts/` folder and is
installed as package data); the `prompts_dir` setting (`ASSISTANT_PROMPTS_DIR`) may point at
another folder to try variants.
Placeholders use `$name` (string.Template), so braces in prompts need no escaping.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

from assistant.config import Config
from assistant.errors import ConfigError

PACKAGE_PROMPTS = Path(__file__).resolve().parent / "prompts"


def prompts_dir() -> Path:
    override: str = Config.from_environment("prompts_dir")
    return Path(override).expanduser() if override else PACKAGE_PROMPTS


@cache
def _read(folder: Path, name: str) -> str:
    path = folder / f"{name}.md"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"cannot read the prompt file {path}: {error.strerror}") from None


def load_prompt(name: str) -> str:
    """The text of `prompts/<name>.md`."""
    return _read(prompts_dir(), name)


def fill_prompt(name: str, **values: str) -> str:
    """`prompts/<name>.md` with its `$placeholders` filled; a missing value is an error."""
    try:
        return Template(load_prompt(name)).substitute(values)
    except KeyError as error:
        raise ConfigError(f"prompt {name!r} needs a value for ${error.args[0]}") from None
