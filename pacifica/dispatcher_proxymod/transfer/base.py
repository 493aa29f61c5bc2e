"""The one interface every transfer implements, and the helpers both implementations share.

A transfer moves a task's files: :meth:`Transfer.download` fetches the input files an event names
into a work directory (every file checked against the event's checksum), and
:meth:`Transfer.upload` delivers a result tree as a new transaction linked to the input one.

Everything here streams: files are copied and hashed in :data:`CHUNK_SIZE` pieces, never held
whole in memory.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, ClassVar

from ..errors import ChecksumMismatch, TransferError
from ..paths import resolve_inside, safe_file_name, safe_relative_dir
from ..tree import Entry, walk

if TYPE_CHECKING:
    from ..events import Event, FileEntry, Upload

#: Bytes read or written at a time while copying and hashing.
CHUNK_SIZE = 1024 * 1024

#: Folder levels below a result directory that are delivered; deeper ones never are.
MAX_RESULT_DEPTH = 64

#: The metadata keys of the transaction a result is filed under, copied from the input upload.
TRANSACTION_FIELDS = ("submitter", "project", "instrument")


@dataclass(frozen=True)
class Delivery:
    """Where a result tree went."""

    location: str  # a local path, or the Pacifica endpoint and transaction
    transaction_id: int | None  # the new Pacifica transaction (None for local deliveries)
    job_id: str | None  # the Ingest job that created it (None for local deliveries)


@dataclass(frozen=True)
class ResultFile:
    """One regular file of a result tree, as it will be delivered."""

    relative_path: PurePosixPath  # relative to the result directory
    path: Path  # absolute path on disk
    size: int
    mtime: float


class Transfer(abc.ABC):
    """Download a task's inputs and deliver its results."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def download(
        self, event: Event, upload: Upload, files: Sequence[FileEntry], dest_dir: Path
    ) -> dict[FileEntry, Path]:
        """Fetch ``files`` into ``dest_dir/<subdir>/<name>`` and return where each one landed.

        Every file is checked against its checksum (:class:`~..errors.ChecksumMismatch`).
        Failures a retry may cure raise ``TransferError(transient=True)`` (connection refused,
        timeouts, 5xx, a cart not ready); the others ``TransferError(transient=False)``.
        Unsafe names raise :class:`~..paths.PathError` before anything is fetched.
        """

    @abc.abstractmethod
    def upload(self, upload: Upload, result_dir: Path, key_values: Mapping[str, str]) -> Delivery:
        """Deliver every regular file under ``result_dir`` as a new transaction.

        The transaction copies ``Transactions.submitter/project/instrument`` from ``upload`` and
        carries ``key_values`` as its TransactionKeyValue entries. Symbolic links are skipped,
        never followed.
        """


def destination_for(dest_dir: Path, entry: FileEntry) -> Path:
    """Where ``entry`` goes under ``dest_dir``; raises PathError for a hostile subdir or name."""
    subdir = safe_relative_dir(entry.subdir, "Files.subdir")
    name = safe_file_name(entry.name, "Files.name")
    return resolve_inside(dest_dir, subdir / name)


def display_name(entry: FileEntry) -> str:
    """The ``subdir/name`` of an event's file, for messages."""
    subdir = entry.subdir.strip("/")
    return f"{subdir}/{entry.name}" if subdir else entry.name


#: The hash types a ``Files`` entry may name: hashlib's guaranteed ones of a fixed length (the
#: ``shake_*`` ones need a length the event cannot give).
SUPPORTED_HASH_TYPES = tuple(
    sorted(name for name in hashlib.algorithms_guaranteed if not name.startswith("shake_"))
)


def hash_type(entry: FileEntry) -> str:
    """The entry's hash type as hashlib names it (lower case, trimmed)."""
    return (entry.hashtype or "").strip().lower()


def hash_problem(entry: FileEntry) -> str | None:
    """Why the entry's checksum cannot be checked (None when it can), naming the file."""
    if not entry.hashsum:
        return f"{display_name(entry)}: the event gives no checksum to verify"
    if hash_type(entry) not in SUPPORTED_HASH_TYPES:
        return (
            f"{display_name(entry)}: unsupported hash type {entry.hashtype!r} "
            f"(supported: {', '.join(SUPPORTED_HASH_TYPES)})"
        )
    return None


def new_hash(entry: FileEntry) -> Any:
    """A fresh hash object of the entry's hash type; TransferError if we cannot check it."""
    problem = hash_problem(entry)
    if problem is not None:
        raise TransferError(problem)
    return hashlib.new(hash_type(entry))


def copy_verified(source: IO[bytes], destination: Path, entry: FileEntry) -> Path:
    """Stream ``source`` to ``destination``, hashing as it goes, and check the entry's checksum.

    The bytes go to a temporary file beside ``destination`` that replaces it only once the
    checksum matches; on a mismatch nothing is left behind and ChecksumMismatch is raised.
    """
    digest = new_hash(entry)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, partial_name = tempfile.mkstemp(prefix=".partial-", dir=destination.parent)
    partial = Path(partial_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(fd, 0o644)  # as open() would create it; mkstemp makes it private
            while chunk := source.read(CHUNK_SIZE):
                digest.update(chunk)
                out.write(chunk)
        actual = str(digest.hexdigest())
        if actual.lower() != entry.hashsum.strip().lower():
            raise ChecksumMismatch(display_name(entry), entry.hashsum, actual)
        os.replace(partial, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    return destination


def open_regular_file(path: Path) -> IO[bytes]:
    """Open ``path`` for reading, refusing a symbolic link or anything but a regular file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TransferError(f"{path} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_utf8(name: str) -> bool:
    """True when a file name (surrogate-escaped, as ``os`` gives it) is valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_result_files(result_dir: Path) -> list[ResultFile]:
    """Every regular file under ``result_dir``, sorted; links are skipped, never followed.

    Iterative, on directory descriptors: any tree ends (:mod:`..tree`). Names that are not
    UTF-8 and folders more than :data:`MAX_RESULT_DEPTH` levels down are not listed (the
    handler refuses them with a reason before anything is delivered)."""
    root = Path(result_dir).absolute()
    if root.is_symlink() or not root.is_dir():
        raise TransferError(f"result directory {root} does not exist or is not a directory")

    def descend(entry: Entry) -> bool:
        return len(entry.parts) < MAX_RESULT_DEPTH and is_utf8(entry.name)

    found: list[ResultFile] = []
    for entry in walk(root, descend):
        info = entry.info
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1 or not is_utf8(entry.name):
            # symbolic links, fifos, sockets, and hard links (which could name a host
            # file a model was able to read) are never delivered
            continue
        relative = PurePosixPath(*entry.parts)
        found.append(ResultFile(relative, root.joinpath(*entry.parts), info.st_size, info.st_mtime))
    return sorted(found, key=lambda item: item.relative_path.parts)


def transaction_metadata(upload: Upload, key_values: Mapping[str, str]) -> list[dict[str, Any]]:
    """The Ingest metadata entries (apart from Files) of a result linked to ``upload``."""
    entries: list[dict[str, Any]] = []
    for field in TRANSACTION_FIELDS:
        entries.append(
            {"destinationTable": f"Transactions.{field}", "value": getattr(upload, field)}
        )
    for key, value in key_values.items():
        entries.append({"destinationTable": "TransactionKeyValue", "key": key, "value": value})
    return entries
