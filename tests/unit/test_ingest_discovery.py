"""The folder walk: links out of the folders given, depth, unlistable folders, pipes, aliases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.ingest.discovery import Skipped, discover


def _reasons(skipped: list[Skipped]) -> dict[str, str]:
    return {item.path: item.reason for item in skipped}


def test_a_link_out_of_the_folder_is_not_followed_one_inside_is(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the walk names files by their real paths
    (tmp_path / "outside.md").write_text("# Outside\n\nnot ours\n")
    notes = tmp_path / "notes"
    (notes / ".archive" / "2024").mkdir(parents=True)
    (notes / "a.md").write_text("# A\n\ntext\n")
    (notes / ".archive" / "2024" / "plan.md").write_text("# Plan\n\ntext\n")
    (notes / "up").symlink_to("..", target_is_directory=True)
    (notes / "current").symlink_to(".archive/2024", target_is_directory=True)
    (notes / "elsewhere.md").symlink_to(tmp_path / "outside.md")

    files, _, skipped = discover([notes])

    assert files == [notes / "a.md", notes / ".archive" / "2024" / "plan.md"]
    reasons = _reasons(skipped)
    assert reasons[str(notes / "up")] == f"symbolic link out of the folders given (to {tmp_path})"
    assert reasons[str(notes / "elsewhere.md")].startswith("symbolic link out of the folders")
    assert reasons[str(notes / ".archive")] == "hidden folder"


def test_a_link_into_another_folder_given_is_followed(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the walk names files by their real paths
    notes, shared = tmp_path / "notes", tmp_path / "shared"
    notes.mkdir()
    shared.mkdir()
    (shared / "s.md").write_text("# S\n\ntext\n")
    (notes / "shared").symlink_to(shared, target_is_directory=True)

    files, _, skipped = discover([notes, shared])

    assert files == [shared / "s.md"]  # once, under its real path
    assert not skipped


def test_two_thousand_nested_folders_are_walked(nested_folders: tuple[Path, Path]) -> None:
    top, bottom = nested_folders
    files, _, skipped = discover([top])
    assert files == [top / "top.md", bottom / "bottom.md"]
    assert not skipped


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the walk names files by their real paths
    # A path longer than the system allows (PATH_MAX, 4096 bytes on Linux) cannot be listed, even
    # by root: a real folder the walk cannot enter, whoever runs the test.
    top = tmp_path / "docs"
    top.mkdir()
    (top / "top.md").write_text("# Top\n\ntext\n")
    too_deep = long_path(top, length=4_200)
    files, _, skipped = discover([top])
    assert files == [top / "top.md"]
    unlisted = [item for item in skipped if item.reason.startswith("cannot list this folder")]
    assert len(unlisted) == 1 and too_deep.startswith(unlisted[0].path)
    assert "name too long" in unlisted[0].reason.lower()


def test_a_folder_without_read_permission_is_reported(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the walk names files by their real paths
    top = tmp_path / "docs"
    (top / "locked").mkdir(parents=True)
    (top / "locked" / "inside.md").write_text("# In\n\ntext\n")
    (top / "locked").chmod(0)
    try:
        if os.access(top / "locked", os.R_OK):
            pytest.skip("permission bits do not stop this user (root): see the long-path test")
        files, _, skipped = discover([top])
    finally:
        (top / "locked").chmod(0o755)
    assert files == []
    assert _reasons(skipped)[str(top / "locked")] == "cannot list this folder (Permission denied)"


def test_named_pipes_are_reported_never_opened(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the walk names files by their real paths
    top = tmp_path / "docs"
    top.mkdir()
    os.mkfifo(top / "pipe.txt")
    os.mkfifo(tmp_path / "given.md")
    files, _, skipped = discover([top, tmp_path / "given.md"])
    assert files == []
    reasons = _reasons(skipped)
    assert reasons[str(top / "pipe.txt")] == "not a regular file (named pipe)"
    assert reasons[str(tmp_path / "given.md")] == "not a regular file (named pipe)"


def test_a_linked_file_is_read_once_under_its_real_path(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the walk names files by their real paths
    top = tmp_path / "docs"
    top.mkdir()
    (top / "real.md").write_text("# Real\n\ntext\n")
    (top / "alias.md").symlink_to("real.md")  # walked first: names sort before
    os.link(top / "real.md", top / "zz-hard-link.md")

    files, _, skipped = discover([top, top / "real.md"])

    assert files == [top / "real.md"]
    same = f"same file as {top / 'real.md'}"
    assert _reasons(skipped) == {str(top / "alias.md"): same, str(top / "zz-hard-link.md"): same}
    assert all(item.forget for item in skipped)


def test_broken_and_looping_links_are_reported(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the walk names files by their real paths
    top = tmp_path / "docs"
    top.mkdir()
    (top / "gone.md").symlink_to("missing.md")
    (top / "a").symlink_to("b")
    (top / "b").symlink_to("a")
    (top / "self").symlink_to(".", target_is_directory=True)
    _, _, skipped = discover([top])
    reasons = _reasons(skipped)
    assert reasons[str(top / "gone.md")] == "broken symbolic link (its target is missing)"
    assert reasons[str(top / "a")] == reasons[str(top / "self")] == "symbolic link loop"


def long_path(base: Path, length: int) -> str:
    """Make folders below `base` until the path is `length` characters long; returns it. Made
    relative to an open folder, since the path itself is too long to use."""
    name = "n" * 200
    handle = os.open(base, os.O_RDONLY)
    path = str(base)
    try:
        while len(path) < length:
            os.mkdir(name, dir_fd=handle)
            inner = os.open(name, os.O_RDONLY, dir_fd=handle)
            os.close(handle)
            handle = inner
            path = os.path.join(path, name)
        with open(os.open("deep.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=handle), "w") as f:
            f.write("# Deep\n\ntext\n")
    finally:
        os.close(handle)
    return path
