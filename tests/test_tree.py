"""tree.py on trees no recursive walk survives: thousands of levels, paths far past PATH_MAX,
names that are not UTF-8, links that point out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacifica.dispatcher_proxymod import tree

LONG_NAME = "d" * 200


def make_chain(root: Path, levels: int, name: str = "d") -> None:
    """``levels`` nested folders under ``root``, a file at the bottom (made with chdir, as a
    model would, so the path may pass PATH_MAX)."""
    start = os.getcwd()
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fchdir(fd)
        for _ in range(levels):
            os.mkdir(name)
            os.chdir(name)
        with open("bottom.txt", "w") as handle:
            handle.write("bottom")
    finally:
        os.chdir(start)
        os.close(fd)


@pytest.fixture
def deep(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "deep"
    root.mkdir()
    make_chain(root, 1500)
    (root / "long").mkdir()
    make_chain(root / "long", 400, LONG_NAME)  # 80 kB of path
    os.mkdir(os.fsencode(root) + b"/bad\xff")
    (root / "link").symlink_to("/etc")
    yield root
    tree.remove_tree(root)


def test_walk_reaches_every_level_with_bounded_descriptors(deep: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    entries = list(tree.walk(deep))
    names = [entry.name for entry in entries]
    assert names.count("bottom.txt") == 2
    assert len([n for n in names if n == "d"]) == 1500
    assert len([n for n in names if n == LONG_NAME]) == 400
    assert os.fsencode("bad\udcff") == b"bad\xff" and "bad\udcff" in names
    assert not any(entry.name == "passwd" for entry in entries), "the link was not followed"
    assert len(os.listdir("/proc/self/fd")) == before, "every descriptor is closed again"
    moved = [name for name in os.listdir(deep) if name.startswith(tree.DEEP_PREFIX)]
    assert moved, f"folders deeper than {tree.MAX_OPEN_DEPTH} levels were moved up"


def test_descend_stops_the_walk_without_moving_anything(deep: Path) -> None:
    entries = list(tree.walk(deep, descend=lambda entry: len(entry.parts) < 10))
    assert max(len(entry.parts) for entry in entries) == 10
    assert not [name for name in os.listdir(deep) if name.startswith(tree.DEEP_PREFIX)]


def test_chown_tree_hands_back_every_entry(deep: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing owners needs root")
    tree.chown_tree(deep, 2_000_000_123, 2_000_000_123)
    assert all(entry.info.st_uid == 2_000_000_123 for entry in tree.walk(deep))
    tree.chown_tree(deep, 0, 0)
    assert all(entry.info.st_uid == 0 for entry in tree.walk(deep))
    assert os.lstat(deep / "link").st_uid == 0 and os.stat("/etc").st_uid == 0


def test_remove_tree_removes_any_tree_and_never_follows_a_link(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("keep me")
    root = tmp_path / "doomed"
    root.mkdir()
    make_chain(root, 1200)
    (root / "to-keep").symlink_to(keep)
    tree.remove_tree(root)
    assert not root.exists()
    assert (keep / "precious.txt").read_text() == "keep me"
    tree.remove_tree(root)  # already gone: fine
