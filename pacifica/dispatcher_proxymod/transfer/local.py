"""A transfer that reads inputs from a local folder and files results into another one.

Used by ``standalone`` and ``process`` runs and by tests: inputs come from
``<data_dir>/<subdir>/<name>`` and each result tree is copied to a new folder under
``output_dir``, with a ``<folder>.delivery.json`` beside it holding the metadata Ingest would have
received.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from ..errors import TransferError
from ..paths import PathError, resolve_inside, safe_file_name, safe_relative_dir
from .base import (
    CHUNK_SIZE,
    Delivery,
    Transfer,
    copy_verified,
    destination_for,
    display_name,
    list_result_files,
    open_regular_file,
    transaction_metadata,
)

if TYPE_CHECKING:
    from ..events import Event, FileEntry, Upload

#: Suffix of the file that describes a local delivery, written next to its folder.
DELIVERY_SUFFIX = ".delivery.json"


class LocalTransfer(Transfer):
    """Inputs from ``data_dir``, results to ``output_dir``; no network."""

    kind = "local"

    def __init__(self, data_dir: Path | None, output_dir: Path | None) -> None:
        self.data_dir = data_dir
        self.output_dir = output_dir

    def download(
        self, event: Event, upload: Upload, files: Sequence[FileEntry], dest_dir: Path
    ) -> dict[FileEntry, Path]:
        """Copy each file from ``data_dir`` into ``dest_dir``, checking its checksum."""
        if self.data_dir is None:
            raise TransferError("the local transfer needs DISPATCHER_DATA_DIR to read inputs")
        destinations = {entry: destination_for(dest_dir, entry) for entry in files}
        for entry, destination in destinations.items():
            with self._open_input(entry) as source:
                copy_verified(source, destination, entry)
        return destinations

    def _open_input(self, entry: FileEntry) -> IO[bytes]:
        """Open the input file of ``entry`` under ``data_dir`` (never through a link outside)."""
        assert self.data_dir is not None
        relative = safe_relative_dir(entry.subdir, "Files.subdir") / safe_file_name(
            entry.name, "Files.name"
        )
        try:
            path = resolve_inside(self.data_dir, relative)
        except PathError as exc:
            raise TransferError(
                f"input file {display_name(entry)} leaves the data directory "
                f"{self.data_dir}: {exc.reason}"
            ) from None
        try:
            return open_regular_file(path)
        except FileNotFoundError:
            raise TransferError(
                f"input file {display_name(entry)} not found in the data directory {self.data_dir}"
            ) from None
        except OSError as exc:
            raise TransferError(
                f"input file {display_name(entry)} in {self.data_dir} cannot be read: "
                f"{exc.strerror}"
            ) from None

    def upload(self, upload: Upload, result_dir: Path, key_values: Mapping[str, str]) -> Delivery:
        """Copy the result tree to a new folder under ``output_dir`` and describe it in JSON."""
        if self.output_dir is None:
            raise TransferError("the local transfer needs DISPATCHER_OUTPUT_DIR to file results")
        results = list_result_files(result_dir)
        target = self._new_folder(upload)
        files: list[dict[str, Any]] = []
        try:
            for result in results:
                destination = target.joinpath(*result.relative_path.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                files.append(_copy_result(result.path, destination, result.relative_path))
        except OSError as exc:
            raise TransferError(f"cannot copy the results into {target}: {exc}") from None
        record = {
            "location": str(target),
            "created": datetime.now(UTC).isoformat(),
            "metadata": transaction_metadata(upload, key_values) + files,
        }
        description = target.with_name(target.name + DELIVERY_SUFFIX)
        with description.open("x", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        return Delivery(location=str(target), transaction_id=None, job_id=None)

    def _new_folder(self, upload: Upload) -> Path:
        """Create and return a folder under ``output_dir`` that no earlier delivery used."""
        assert self.output_dir is not None
        output_dir = self.output_dir.absolute()
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransferError(f"cannot create the output directory {output_dir}: {exc}") from None
        txn = upload.transaction_id if upload.transaction_id is not None else "none"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        base = f"result-txn{txn}-{stamp}"
        for attempt in range(1000):
            name = base if attempt == 0 else f"{base}-{attempt}"
            folder = output_dir / name
            if folder.with_name(name + DELIVERY_SUFFIX).exists():
                continue
            with contextlib.suppress(FileExistsError):
                folder.mkdir()
                return folder
        raise TransferError(f"cannot find a free result folder name {base}-N in {output_dir}")


def _copy_result(source: Path, destination: Path, relative: PurePosixPath) -> dict[str, Any]:
    """Copy one result file (streamed, hashed) and return its Ingest ``Files`` entry."""
    digest = hashlib.sha1()  # noqa: S324 - Pacifica's checksum, not a security measure
    size = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with open_regular_file(source) as reader:
        modified = os.fstat(reader.fileno()).st_mtime
        with os.fdopen(os.open(destination, flags, 0o644), "wb") as writer:
            while chunk := reader.read(CHUNK_SIZE):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
    os.utime(destination, (modified, modified), follow_symlinks=False)
    mtime = datetime.fromtimestamp(modified, UTC).replace(tzinfo=None).isoformat()
    return {
        "destinationTable": "Files",
        "name": relative.name,
        "subdir": str(relative.parent) if str(relative.parent) != "." else "",
        "size": size,
        "mimetype": mimetypes.guess_type(relative.name)[0] or "application/octet-stream",
        "hashtype": "sha1",
        "hashsum": digest.hexdigest(),
        "mtime": mtime,
        "ctime": mtime,
    }
