"""Find the files an ingest reads, without leaving the folders it was given.

- A symbolic link is followed only when its real target stays inside one of the folders (or
  files) given; a link out of them (`notes/up -> ..`) is reported, never read.
- Every file is named by its real path and read once: another path to the same file (a link, a
  hard link, a folder given twice) is reported as "same file as ...", so search never shows one
  passage twice, and ingesting a folder through another path does not add it again.
- Folders are walked with a stack of our own, so no depth is too deep; a folder that cannot be
  listed is reported, and what was ingested from it before is kept rather than removed.
- Only regular files are read: a named pipe, socket or device is reported, never opened (opening
  a pipe would wait for a writer forever).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import InputError
from assistant.ingest.readers import detect_format, unsupported_reason

# Folders that hold build output or dependencies, never a user's documents.
SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "site-packages", "venv"})


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str
    # True when the path is only another way to reach a file or folder (a link, a duplicate):
    # documents stored under it are forgotten. Otherwise (a file we could not read this time, a
    # folder we could not list), documents stored under it are kept.
    forget: bool = False


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[Path], list[Skipped]]:
    """Files to read (real paths), folders walked (for removals), and what was skipped."""
    for given in paths:
        if not given.exists():
            raise InputError(f"no such file or folder: {given}")
    walk = _Walk([os.path.realpath(given) for given in paths])
    for given in paths:
        walk.add_given(given)
    return walk.files, walk.folders, walk.skipped


class _Walk:
    def __init__(self, roots: list[str]) -> None:
        self.roots = roots
        self.files: list[Path] = []
        self.folders: list[Path] = []
        self.skipped: list[Skipped] = []
        self.file_paths: dict[tuple[int, int], str] = {}  # (device, inode) -> the path we read
        self.folder_paths: dict[tuple[int, int], str] = {}  # folders walked or waiting

    def add_given(self, given: Path) -> None:
        real = os.path.realpath(given)
        try:
            status = os.stat(real)
        except OSError as error:
            self.skip(real, f"cannot read ({error.strerror})")
            return
        if stat.S_ISDIR(status.st_mode):
            if Path(real) not in self.folders:
                self.folders.append(Path(real))
            identity = (status.st_dev, status.st_ino)
            if identity not in self.folder_paths:  # else walked already, through a link
                self.folder_paths[identity] = real
                self.walk(real)
        elif stat.S_ISREG(status.st_mode):
            self.add_file(os.path.abspath(given), real, status)
        else:
            self.skip(real, _not_regular(status))

    def walk(self, top: str) -> None:
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda entry: entry.name)
            except OSError as error:
                self.skip(folder, f"cannot list this folder ({error.strerror})")
                continue
            subfolders: list[str] = []
            for entry in entries:
                subfolder = self.visit(folder, entry)
                if subfolder is not None:
                    subfolders.append(subfolder)
            stack.extend(reversed(subfolders))  # so the walk goes in name order, depth first

    def visit(self, folder: str, entry: os.DirEntry[str]) -> str | None:
        """Record one folder entry; returns the real path of a folder still to walk."""
        path = entry.path
        try:
            is_folder = entry.is_dir()
        except OSError:  # a link loop, say: reported below, when the link is followed
            is_folder = False
        if entry.name.startswith("."):
            self.skip(path, "hidden folder" if is_folder else "hidden file")
            return None
        if is_folder and entry.name in SKIPPED_FOLDERS:
            self.skip(path, "dependency folder")
            return None
        real = path
        if entry.is_symlink():
            try:
                real = os.path.realpath(path, strict=True)
            except OSError as error:
                self.skip(path, _broken_link(error), forget=True)
                return None
            if not self.inside_roots(real):
                self.skip(path, f"symbolic link out of the folders given (to {real})", forget=True)
                return None
        try:
            status = entry.stat()
        except OSError as error:
            what = "list this folder" if is_folder else "read"
            self.skip(path, f"cannot {what} ({error.strerror})")
            return None
        if stat.S_ISDIR(status.st_mode):
            return self.add_folder(folder, path, real, status)
        if stat.S_ISREG(status.st_mode):
            self.add_file(path, real, status)
        else:
            self.skip(path, _not_regular(status))
        return None

    def add_folder(self, parent: str, path: str, real: str, status: os.stat_result) -> str | None:
        identity = (status.st_dev, status.st_ino)
        known = self.folder_paths.get(identity)
        if known is None:
            self.folder_paths[identity] = real
            return real
        if parent == known or parent.startswith(known.rstrip(os.sep) + os.sep):
            self.skip(path, "symbolic link loop", forget=True)
        elif path != known:
            self.skip(path, f"same folder as {known}", forget=True)
        return None  # else: reached through a link first and walked under this very path

    def add_file(self, path: str, real: str, status: os.stat_result) -> None:
        if detect_format(Path(real)) is None:
            self.skip(path, unsupported_reason(Path(real)))
            return
        identity = (status.st_dev, status.st_ino)
        kept = self.file_paths.get(identity)
        if kept is None:
            kept = self.file_paths[identity] = real
            self.files.append(Path(real))
        if path != kept:
            self.skip(path, f"same file as {kept}", forget=True)

    def inside_roots(self, real: str) -> bool:
        return any(
            real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots
        )

    def skip(self, path: str, reason: str, forget: bool = False) -> None:
        self.skipped.append(Skipped(path, reason, forget))


def _not_regular(status: os.stat_result) -> str:
    mode = status.st_mode
    kind = (
        "named pipe"
        if stat.S_ISFIFO(mode)
        else "socket"
        if stat.S_ISSOCK(mode)
        else "device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "special file"
    )
    return f"not a regular file ({kind})"


def _broken_link(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if error.errno == errno.ENOENT:
        return "broken symbolic link (its target is missing)"
    return f"cannot follow symbolic link ({error.strerror})"
