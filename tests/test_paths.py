"""Tests for paths: relative directories, file names and containment from event values."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacifica.dispatcher_proxymod.errors import UnprocessableEvent
from pacifica.dispatcher_proxymod.paths import (
    MAX_DEPTH,
    MAX_NAME_BYTES,
    MAX_RELATIVE_DIR_BYTES,
    PathError,
    quote,
    resolve_inside,
    safe_file_name,
    safe_relative_dir,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory that plays the task's work directory (module scope, for Hypothesis)."""
    yield tmp_path_factory.mktemp("root")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "."),
        (".", "."),
        ("./", "."),
        ("a", "a"),
        ("a/", "a"),
        ("a/b/c", "a/b/c"),
        ("./a/./b//c/", "a/b/c"),
        ("données/日本語/ü", "données/日本語/ü"),
        ("a b/.hidden/x.y", "a b/.hidden/x.y"),
        ("12:30", "12:30"),
        ("notes…", "notes…"),
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),  # ZWNJ
    ],
)
def test_safe_relative_dir_accepts_and_normalises(value: str, expected: str) -> None:
    assert safe_relative_dir(value, "subdir") == PurePosixPath(expected)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("/etc", "absolute"),
        ("//etc", "absolute"),
        ("..", "'..'"),
        ("../x", "'..'"),
        ("a/../../b", "'..'"),
        ("a/..", "'..'"),
        ("...", "dots only"),
        ("a/..../b", "dots only"),
        ("a\\b", "backslash"),
        ("..\\..\\windows", "backslash"),
        ("C:", "drive letter"),
        ("c:/Windows", "drive letter"),
        ("C:foo/bar", "drive letter"),
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\rb", "U+000D"),
        ("a\x1bb", "U+001B"),
        ("a\x7f", "U+007F"),
        ("a\x85", "U+0085"),
        ("a\u2028b", "U+2028"),
        ("evil\u202etxt.exe", "U+202E"),
        ("\ufeffa", "U+FEFF"),
        ("a\udc80", "U+DC80"),
        ("\uff0e\uff0e/x", "normalises"),
        ("a\uff0fb", "normalises"),
        ("\u2025", "normalises"),
        ("x" * (MAX_RELATIVE_DIR_BYTES + 1), "longer than"),
        ("é" * 600, "longer than"),
        ("x" * (MAX_NAME_BYTES + 1), "component is longer"),
        ("/".join(["a"] * (MAX_DEPTH + 1)), "more than"),
    ],
)
def test_safe_relative_dir_rejects(value: str, reason: str) -> None:
    with pytest.raises(PathError) as caught:
        safe_relative_dir(value, "Files subdir")
    error = caught.value
    assert isinstance(error, UnprocessableEvent)
    assert reason in error.reason
    assert error.what == "Files subdir"
    assert error.value == value
    assert error.problems == [str(error).removeprefix("unprocessable event: ")]
    assert error.problems[0].startswith(f"Files subdir = {quote(value)}")


def test_error_message_escapes_and_bounds_the_value() -> None:
    with pytest.raises(PathError) as caught:
        safe_relative_dir("../" + "\n" * 5000, "in_dir")
    message = str(caught.value)
    assert "\n" not in message
    assert "\\n" in message
    assert len(message) < 300


def test_non_text_is_a_path_error() -> None:
    with pytest.raises(PathError, match="must be text"):
        safe_relative_dir(None, "subdir")  # type: ignore[arg-type]
    with pytest.raises(PathError, match="must be text"):
        safe_file_name(b"a.csv", "name")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["a.csv", "in_file_one.csv", ".hidden", "ü.py", "a b", "x" * 255])
def test_safe_file_name_accepts(value: str) -> None:
    assert safe_file_name(value, "name") == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        (".", "not a file name"),
        ("..", "not a file name"),
        ("...", "dots only"),
        ("a/b", "'/'"),
        ("../a", "'/'"),
        ("/etc/passwd", "'/'"),
        ("a\\b", "backslash"),
        ("a\x00", "U+0000"),
        ("a\tb", "U+0009"),
        ("\uff0e\uff0e", "normalises"),
        ("A:", "drive letter"),
        ("c:evil.py", "drive letter"),
        ("x" * 256, "longer than"),
        ("é" * 128, "longer than"),
    ],
)
def test_safe_file_name_rejects(value: str, reason: str) -> None:
    with pytest.raises(PathError) as caught:
        safe_file_name(value, "Files name")
    assert reason in caught.value.reason
    assert caught.value.what == "Files name"


def test_resolve_inside_joins_under_root(root: Path) -> None:
    assert resolve_inside(root, PurePosixPath("a/b")) == root.resolve() / "a" / "b"
    assert resolve_inside(root, PurePosixPath(".")) == root.resolve()


@pytest.mark.parametrize("relative", ["/etc", "../x", "a/../../x"])
def test_resolve_inside_rechecks_handmade_paths(root: Path, relative: str) -> None:
    with pytest.raises(PathError):
        resolve_inside(root, PurePosixPath(relative))


def test_resolve_inside_refuses_a_symlink_that_leaves_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "inner").mkdir()
    (root / "fine").symlink_to(root / "inner")
    with pytest.raises(PathError, match="outside"):
        resolve_inside(root, PurePosixPath("escape/data"))
    with pytest.raises(PathError, match="outside"):
        resolve_inside(root, PurePosixPath("escape"))
    assert resolve_inside(root, PurePosixPath("fine/x")) == (root / "inner" / "x").resolve()


def test_resolve_inside_works_when_root_itself_is_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert resolve_inside(link, PurePosixPath("x")) == real.resolve() / "x"


_ADVERSARIAL_PIECES = [
    "a",
    "é",
    "日本",
    ".",
    "..",
    "...",
    "/",
    "//",
    "\\",
    "\x00",
    "\n",
    "\r",
    "\t",
    "\x7f",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\uff0e",
    "\uff0f",
    "\u2025",
    "C:",
    ":",
    " ",
    "~",
    "$HOME",
    "%",
]

_adversarial_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None)),
    st.lists(st.sampled_from(_ADVERSARIAL_PIECES), max_size=40).map("".join),
    st.tuples(st.sampled_from(_ADVERSARIAL_PIECES), st.integers(0, 3000)).map(
        lambda piece_count: piece_count[0] * piece_count[1]
    ),
)


@settings(deadline=None)  # no timing assertions on a loaded machine
@given(value=_adversarial_text)
def test_property_relative_dir_is_safe_or_path_error(root: Path, value: str) -> None:
    try:
        relative = safe_relative_dir(value, "subdir")
    except PathError:
        return
    assert not relative.is_absolute()
    assert ".." not in relative.parts
    assert len(str(relative).encode("utf-8")) <= MAX_RELATIVE_DIR_BYTES
    joined = resolve_inside(root, relative)
    real_root = root.resolve()
    assert joined == real_root or real_root in joined.parents
    assert os.path.commonpath([joined, real_root]) == str(real_root)
    assert safe_relative_dir(str(relative), "again") == relative


@settings(deadline=None)  # no timing assertions on a loaded machine
@given(value=_adversarial_text)
def test_property_file_name_is_one_component_or_path_error(root: Path, value: str) -> None:
    try:
        name = safe_file_name(value, "name")
    except PathError:
        return
    assert name == value
    assert PurePosixPath(name).name == name
    assert resolve_inside(root, PurePosixPath(name)).parent == root.resolve()
