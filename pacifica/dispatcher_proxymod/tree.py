"""Walking, handing over and removing folder trees that a model made: any depth, any name.

A model can leave a tree no recursive walk survives (thousands of nested folders, paths longer
than ``PATH_MAX``, names that are not UTF-8). Everything here is iterative and works on
directory descriptors (``openat``-style ``dir_fd`` calls), never on long paths, and never
follows a symbolic link. One descriptor is open per level; a folder deeper than
:data:`MAX_OPEN_DEPTH` is first moved up to the top of the tree (as ``.deep-<n>``) and handled
as a tree of its own, so no tree can exhaust the descriptors.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Levels handled with open descriptors before a deeper folder is moved up to the top.
MAX_OPEN_DEPTH = 200
#: Prefix of the folders moved up to the top of a tree (``<prefix><n>``).
DEEP_PREFIX = ".deep-"

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Entry:
    """One entry of a walked tree."""

    parts: tuple[str, ...]  # the relative path, one name per level (surrogate-escaped)
    info: os.stat_result  # of the entry itself (never of a link's target)
    parent_fd: int  # the open folder that holds it, valid while the walk is at it

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)


def _open_dir(name: str | Path, dir_fd: int | None = None) -> int | None:
    """A descriptor of the folder (never through a link), or None when it is gone or not one."""
    try:
        return os.open(name, _DIRECTORY_FLAGS, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError, OSError):
        return None


def _names(fd: int) -> list[str]:
    try:
        return sorted(os.listdir(fd))
    except OSError:
        return []


def walk(
    root: Path,
    descend: Callable[[Entry], bool] = lambda _: True,
    leave: Callable[[Entry], None] | None = None,
) -> Iterator[Entry]:
    """Every entry under ``root`` (not ``root`` itself), parents before children, names sorted.

    A folder is entered only when ``descend(entry)`` says so (after the caller has seen it);
    ``leave(entry)`` is called after all of a folder's entries. Folders deeper than
    :data:`MAX_OPEN_DEPTH` are moved up to ``root`` (``.deep-<n>``) and walked after the rest,
    their parts then starting with that name.
    """
    top_fd = _open_dir(root)
    if top_fd is None:
        return
    counter = itertools.count()
    pending: list[str | None] = [None]  # None: root itself; else a moved-up folder's name
    try:
        while pending:
            start = pending.pop()
            folder: Entry | None = None
            if start is None:
                first = top_fd
            else:  # a moved-up folder: walked on its own, removed or left by ``leave`` too
                opened = _open_dir(start, top_fd)
                if opened is None:
                    continue
                first = opened
                folder = Entry((start,), os.fstat(first), top_fd)
            # each frame: (descriptor, its entry or None for root, names left)
            frames: list[tuple[int, Entry | None, list[str]]] = [
                (first, folder, list(reversed(_names(first))))
            ]
            try:
                while frames:
                    fd, folder, left = frames[-1]
                    if not left:
                        frames.pop()
                        if fd != top_fd:
                            os.close(fd)
                        if folder is not None and leave is not None:
                            leave(folder)
                        continue
                    name = left.pop()
                    try:
                        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        continue
                    parts = (*folder.parts, name) if folder is not None else (name,)
                    entry = Entry(parts, info, fd)
                    yield entry
                    if not entry.is_dir or not descend(entry):
                        continue
                    if len(frames) >= MAX_OPEN_DEPTH:
                        moved = _move_up(fd, name, top_fd, counter)
                        if moved is not None:
                            pending.append(moved)
                        continue
                    child = _open_dir(name, fd)
                    if child is not None:
                        frames.append((child, entry, list(reversed(_names(child)))))
            finally:
                for fd, _, _ in frames:
                    if fd != top_fd:
                        os.close(fd)
    finally:
        os.close(top_fd)


def _move_up(parent_fd: int, name: str, top_fd: int, counter: Iterator[int]) -> str | None:
    """Move a too-deep folder to the top of the tree under a free name; None if it failed."""
    for _ in range(1000):
        target = f"{DEEP_PREFIX}{next(counter)}"
        try:
            os.stat(target, dir_fd=top_fd, follow_symlinks=False)
            continue  # taken (a model may have used the name)
        except FileNotFoundError:
            pass
        try:
            os.rename(name, target, src_dir_fd=parent_fd, dst_dir_fd=top_fd)
        except OSError:
            return None
        return target
    return None


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything under it to ``uid``/``gid`` (links themselves)."""
    with contextlib.suppress(FileNotFoundError):
        os.chown(root, uid, gid, follow_symlinks=False)
    for entry in walk(root):
        with contextlib.suppress(OSError):
            os.chown(entry.name, uid, gid, dir_fd=entry.parent_fd, follow_symlinks=False)


def remove_tree(root: Path) -> None:
    """Remove ``root`` and everything under it, whatever its depth; a missing root is fine."""
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        with contextlib.suppress(FileNotFoundError):
            root.unlink()
        return

    def remove_folder(entry: Entry) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(entry.name, dir_fd=entry.parent_fd)

    for entry in walk(root, leave=remove_folder):
        if not entry.is_dir:
            with contextlib.suppress(OSError):
                os.unlink(entry.name, dir_fd=entry.parent_fd)
    try:
        os.rmdir(root)
    except FileNotFoundError:
        pass
    except OSError as exc:  # e.g. a mount point; the caller goes on, the operator is told
        log.warning("could not remove all of %s: %s", root, exc.strerror)
