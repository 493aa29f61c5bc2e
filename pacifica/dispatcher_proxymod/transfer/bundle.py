"""The Ingest bundle: pacifica-uploader's ``MetaData`` and ``Bundler`` over a result tree.

The tar holds ``data/<relative path>`` plus ``metadata.txt``; files are opened one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from ..errors import TransferError
from .base import ResultFile, open_regular_file

if TYPE_CHECKING:
    from ..events import Upload


def bundle_metadata(upload: Upload, key_values: Mapping[str, str]) -> Any:
    """pacifica-uploader ``MetaData`` for a result linked to ``upload`` (Files are added later).

    TransferError (not transient) if a Transactions field is missing or a key/value is empty,
    since Ingest would refuse the bundle.
    """
    from pacifica.uploader.metadata import MetaData, MetaObj

    objects = []
    for field in ("submitter", "project", "instrument"):
        value = getattr(upload, field)
        if value is None or value == "":
            raise TransferError(
                f"cannot upload results: the input upload has no Transactions.{field}"
            )
        objects.append(MetaObj(destinationTable=f"Transactions.{field}", value=value))
    for key, value in key_values.items():
        if not isinstance(key, str) or not key or not isinstance(value, str) or value == "":
            raise TransferError(
                f"cannot upload results: key/value {key!r} = {value!r} needs a non-empty text "
                "key and value"
            )
        objects.append(MetaObj(destinationTable="TransactionKeyValue", key=key, value=value))
    return MetaData(objects)


def write_bundle(metadata: Any, results: Sequence[ResultFile], out: IO[bytes]) -> None:
    """Stream an Ingest bundle of ``results`` into ``out`` (files are opened one at a time)."""
    from pacifica.uploader.bundler import Bundler

    readers = [_LazyFile(result) for result in results]
    file_data = [
        {
            "name": f"data/{result.relative_path.as_posix()}",
            "size": result.size,
            "mtime": result.mtime,
            "fileobj": reader,
        }
        for result, reader in zip(results, readers, strict=True)
    ]
    try:
        Bundler(metadata, file_data).stream(out)
    except ValueError as exc:
        raise TransferError(f"cannot bundle the results: {exc}") from None
    except OSError as exc:
        raise TransferError(f"cannot bundle the results (a file changed?): {exc}") from None
    finally:
        for reader in readers:
            reader.close()


class _LazyFile:
    """A read-only file that opens on first read and closes once its expected size is read.

    Bundler wants every file object up front; opening them all at once could exhaust the
    process's file descriptors on a large result tree.
    """

    def __init__(self, result: ResultFile) -> None:
        self.result = result
        self.remaining = result.size
        self.handle: IO[bytes] | None = None
        self.finished = False

    def read(self, size: int = -1) -> bytes:
        if self.finished:
            return b""
        if self.handle is None:
            self.handle = open_regular_file(self.result.path)
        data = self.handle.read(size)
        self.remaining -= len(data)
        if not data or self.remaining <= 0:
            self.close()
        return data

    def close(self) -> None:
        self.finished = True
        if self.handle is not None:
            self.handle.close()
            self.handle = None
