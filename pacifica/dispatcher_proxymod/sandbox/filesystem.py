"""The bwrap command line: the sandbox's file system, built from scratch, and its namespaces."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from ..runtime import RUNTIME_DIR

#: The model's uid and gid inside the user namespace when the service is not root.
NAMESPACE_ID = 1000

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")


@functools.cache
def bwrap_options(bwrap: str | None) -> frozenset[str]:
    """The options this bubblewrap knows, from its ``--help`` (``--size`` came in 0.7,
    ``--disable-userns`` in 0.8): older ones run without those controls, and say so."""
    if bwrap is None:
        return frozenset()
    try:
        shown = subprocess.run(
            [bwrap, "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(re.findall(r"--[a-z][a-z0-9-]*", shown.stdout + shown.stderr))


def tmp_is_sized() -> bool:
    """True when the sandbox's ``/tmp`` gets a size (this bwrap has ``--size``)."""
    return "--size" in bwrap_options(shutil.which("bwrap"))


def userns_disabled() -> bool:
    """True when bwrap can forbid user namespaces inside (``--disable-userns``)."""
    return "--disable-userns" in bwrap_options(shutil.which("bwrap"))


def interpreter() -> Path:
    """The base installation's interpreter (not a virtualenv's), by its real path."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"python{version}", "python3"):
        path = Path(sys.base_prefix) / "bin" / candidate
        if path.exists():
            return path.resolve()
    return Path(sys.executable).resolve()


class _Tree:
    """bwrap arguments that build the sandbox's file system, parent folders made ``0755``."""

    def __init__(self) -> None:
        self.args: list[str] = []
        # destination -> True when folders may be created under it (tmpfs, new folders)
        self._mounts: dict[str, bool] = {"/": True}

    def _needs_folder(self, path: str) -> bool:
        owner = max(
            (
                dest
                for dest in self._mounts
                if path == dest or path.startswith(dest.rstrip("/") + "/")
            ),
            key=len,
        )
        return owner != path and self._mounts[owner]

    def _parents(self, destination: str) -> None:
        for parent in reversed(Path(destination).parents):
            text = str(parent)
            if self._needs_folder(text):
                self.args += ["--perms", "0755", "--dir", text]
                self._mounts[text] = True

    def read_only(self, source: str, destination: str | None = None) -> None:
        destination = destination or source
        self._parents(destination)
        self.args += ["--ro-bind", source, destination]
        self._mounts[destination] = False

    def writable(self, source: str, destination: str | None = None) -> None:
        destination = destination or source
        self._parents(destination)
        self.args += ["--bind", source, destination]
        self._mounts[destination] = False

    def tmpfs(self, destination: str, perms: str = "0755", size: int | None = None) -> None:
        """A tmpfs at ``destination``; ``size`` bytes at most when given (``ENOSPC`` then)."""
        self._parents(destination)
        sized = ["--size", str(size)] if size is not None else []
        self.args += ["--perms", perms, *sized, "--tmpfs", destination]
        self._mounts[destination] = True

    def symlink(self, target: str, destination: str) -> None:
        self._parents(destination)
        self.args += ["--symlink", target, destination]
        self._mounts[destination] = False

    def special(self, option: str, destination: str) -> None:
        """``--proc`` or ``--dev``."""
        self._parents(destination)
        self.args += [option, destination]
        self._mounts[destination] = False

    def covers(self, path: str) -> bool:
        """True when ``path`` already shows through a read-only bind."""
        return any(
            not writable and (path == dest or path.startswith(dest.rstrip("/") + "/"))
            for dest, writable in self._mounts.items()
            if dest != "/"
        )


def _file_system(work: Path, extra_read_only: Sequence[str], tmp_bytes: int | None) -> list[str]:
    """The bwrap mount arguments for one model."""
    tree = _Tree()
    for folder in _SYSTEM_DIRS:
        if os.path.islink(folder):
            tree.symlink(os.readlink(folder), folder)
        elif os.path.isdir(folder):
            tree.read_only(folder)
    for etc_file in _ETC_FILES:
        if os.path.exists(etc_file):
            tree.read_only(os.path.realpath(etc_file), etc_file)
    python_home = os.path.realpath(sys.base_prefix)
    if not tree.covers(python_home):
        tree.read_only(python_home)
    python = str(interpreter())
    if not tree.covers(python):
        tree.read_only(python)
    for hidden in _site_packages():
        tree.tmpfs(hidden)
    tree.tmpfs("/tmp", "1777", tmp_bytes)  # noqa: S108 - private to the sandbox, sized
    tree.special("--proc", "/proc")
    tree.special("--dev", "/dev")
    tree.read_only(str(RUNTIME_DIR))
    for extra in extra_read_only:
        tree.read_only(os.path.realpath(extra), os.path.abspath(extra))
    tree.writable(os.path.realpath(work), str(work))
    # The root itself is a tmpfs holding only mount points: make it read-only too.
    return [*tree.args, "--remount-ro", "/"]


def _site_packages() -> list[str]:
    """The base installation's site-packages folders (hidden: models get the stdlib only)."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    found: list[str] = []
    for key in ("purelib", "platlib"):
        path = os.path.realpath(sysconfig.get_path(key, vars=base))
        if os.path.isdir(path) and path not in found and not str(RUNTIME_DIR).startswith(path):
            found.append(path)
    return found


def bwrap_command(
    bwrap: str,
    setpriv: str | None,
    work: Path,
    extra_read_only: Sequence[str],
    info_fd: int,
    sandbox_uid: int | None,
    tmp_bytes: int,
) -> list[str]:
    """The bwrap command line that wraps the runner command; ``/tmp`` holds ``tmp_bytes``."""
    command = [
        bwrap,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--info-fd",
        str(info_fd),
    ]
    if sandbox_uid is None:
        identity = str(NAMESPACE_ID)
        # --disable-userns: the model may make no user namespace of its own (seccomp refuses
        # it too; without a user namespace of ours, as root, seccomp alone does).
        command += ["--unshare-user", "--uid", identity, "--gid", identity]
        if "--disable-userns" in bwrap_options(bwrap):
            command.append("--disable-userns")
    else:
        # bwrap keeps every capability for root: keep only what setpriv needs to drop them.
        command += ["--cap-drop", "ALL"]
        for capability in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
            command += ["--cap-add", capability]
    sized = tmp_bytes if "--size" in bwrap_options(bwrap) else None
    command += _file_system(work, extra_read_only, sized)
    # No --chdir: bwrap's root has no DAC override; run_model.py changes to the work dir.
    command += ["--chdir", "/", "--"]
    if sandbox_uid is not None:
        assert setpriv is not None
        identity = str(sandbox_uid)
        command += [
            setpriv,
            "--reuid",
            identity,
            "--regid",
            identity,
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    return command
