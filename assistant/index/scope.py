"""Scoping retrieval to some of the ingested documents: the files and folders a question is about.

A scope is a list of paths, each an ingested file or a folder of them, resolved as `forget`
resolves them (the user folder expanded, made absolute, links followed). A document is in scope
when its file is one of the paths or lies under one as a folder; the comparison is exact, so
case-sensitive, even on SQLite, whose LIKE ignores ASCII case (see `sql`).

The scope is applied inside retrieval, never by filtering a top-k afterwards, which would return
too few passages (none, when the scoped documents rank low): lexical search adds the scope's
condition to its SQL, and dense search is given the scope's chunk ids (`Store.chunk_ids`), which
FAISS honours with an ID selector and pgvector with a WHERE clause (see their modules).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import TextClause, text

from assistant.errors import InputError

LIKE_ESCAPE = "/"  # as SQLAlchemy's `autoescape`; any character works once it is escaped too


@dataclass(frozen=True)
class Scope:
    """Absolute paths of files and folders, as stored in `documents.path`."""

    paths: tuple[str, ...]

    @classmethod
    def of(cls, paths: Iterable[str | os.PathLike[str]]) -> Scope:
        """The scope of these paths, resolved as `forget` resolves them, each once, in order."""
        resolved = (str(Path(path).expanduser().resolve()) for path in paths)
        return cls(tuple(dict.fromkeys(resolved)))

    def sql(self, column: str = "documents.path") -> tuple[str, dict[str, str]]:
        """A SQL condition on `column` (the path is one of these or under one), and its bound
        parameters. LIKE finds the candidates with the path index; comparing the leading
        characters exactly keeps it case-sensitive."""
        conditions: list[str] = []
        parameters: dict[str, str] = {}
        for number, path in enumerate(self.paths):
            folder = path.rstrip("/") + "/"
            parameters |= {
                f"scope_path_{number}": path,
                f"scope_like_{number}": _escape_like(folder) + "%",
                f"scope_folder_{number}": folder,
            }
            conditions.append(
                f"({column} = :scope_path_{number} OR ({column} LIKE :scope_like_{number} "
                f"ESCAPE '{LIKE_ESCAPE}' AND substr({column}, 1, {len(folder)}) = "
                f":scope_folder_{number}))"
            )
        return "(" + (" OR ".join(conditions) or "1 = 0") + ")", parameters

    def clause(self, column: str = "documents.path") -> TextClause:
        """`sql` as a clause for SQLAlchemy's `where`."""
        condition, parameters = self.sql(column)
        return text(condition).bindparams(**parameters)

    def chunks_sql(self) -> tuple[str, dict[str, str]]:
        """A subquery of the ids of the chunks in scope (for `id IN (...)`), and its parameters."""
        condition, parameters = self.sql()
        return (
            "SELECT chunks.id FROM chunks JOIN documents ON documents.id = chunks.document_id "
            f"WHERE {condition}"
        ), parameters


class Documents(Protocol):
    """What `resolve_scope` needs of a `Store` (which imports this module)."""

    def documents(self, path_prefix: str | None = None) -> Sequence[object]: ...


def resolve_scope(paths: Iterable[str | os.PathLike[str]], store: Documents) -> Scope | None:
    """The scope of `paths` over `store`; None when no path is given (everything is in scope).

    Raises `InputError` naming each path under which nothing is ingested, so a mistyped folder is
    one clear error instead of a search over nothing.
    """
    scope = Scope.of(paths)
    if not scope.paths:
        return None
    empty = [path for path in scope.paths if not store.documents(path)]
    if empty:
        raise InputError(
            f"nothing ingested under {', '.join(empty)}; see `assistant docs` for what is"
        )
    return scope


def _escape_like(value: str) -> str:
    for special in (LIKE_ESCAPE, "%", "_"):
        value = value.replace(special, LIKE_ESCAPE + special)
    return value
