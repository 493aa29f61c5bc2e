"""Downloads through Cartd: one cart holding exactly the requested files, streamed to disk.

Cartd is asked (through pacifica-downloader's ``CartAPI``) for a cart holding exactly the
requested files; we wait until it is ready and read its tar as a stream: every member we asked
for is copied to disk in chunks while its checksum is computed; nothing else in the tar is touched.
"""

from __future__ import annotations

import contextlib
import logging
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn

import requests

from ..errors import ChecksumMismatch, TransferError
from ..settings import PacificaSettings
from .base import copy_verified, destination_for, display_name, new_hash
from .session import POLL_FIRST, POLL_LONGEST, Retry, answer_text, classify

if TYPE_CHECKING:
    from ..events import FileEntry, Upload

LOGGER = logging.getLogger(__name__)

#: The cart's tar is requested under this name; Cartd uses it as the tar's top folder.
CART_FILENAME = "data"
#: How long a cart of several files may stage before we fall back to one cart per file
#: (a stalled multi-file cart otherwise costs the whole cart timeout).
MULTI_FILE_CART_WAIT = 30.0


class Cartd:
    """Fetches files through Cartd, verifying each, retrying transient failures."""

    def __init__(
        self,
        settings: PacificaSettings,
        session: requests.Session,
        retry: Retry,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.session = session
        self.retry = retry
        self.sleep = sleep

    def download(
        self, upload: Upload, files: Sequence[FileEntry], dest_dir: Path
    ) -> dict[FileEntry, Path]:
        """Fetch exactly ``files`` through Cartd, verifying each, retrying transient failures.

        All files go in one cart; if that cart fails, each file gets a cart of its own.
        """
        destinations = {entry: destination_for(dest_dir, entry) for entry in files}
        if not destinations:
            return {}
        for entry in destinations:
            new_hash(entry)  # refuse an unverifiable file before asking Cartd for anything
        file_ids = self._file_ids(upload, list(destinations))
        if len(destinations) > 1:
            try:
                wait = min(self.settings.cart_timeout_seconds, MULTI_FILE_CART_WAIT)
                return self._download_once(destinations, file_ids, wait)
            except TransferError as exc:
                if not (exc.transient or isinstance(exc, ChecksumMismatch)):
                    raise
                LOGGER.warning("cart of %d files failed (%s); one cart per file", len(files), exc)
        # One cart per file, in turn, each with retries. Cartd pulls a cart's files from the
        # archive interface concurrently, and the posix archive interface shares one file
        # handle between requests: overlapping pulls can break off (the cart then stays
        # "staging") or mix bytes (Cartd then reports a hash mismatch). A cart of one file
        # avoids both and names the file that really differs.
        fetched: dict[FileEntry, Path] = {}
        for entry, destination in destinations.items():
            single = {entry: destination}
            fetched.update(self.retry(partial(self._download_once, single, file_ids)))
        return fetched

    def _file_ids(self, upload: Upload, entries: list[FileEntry]) -> dict[FileEntry, int | str]:
        """Each entry's Pacifica file id; those the event leaves out are looked up by name."""
        ids: dict[FileEntry, int | str] = {
            entry: entry.file_id for entry in entries if entry.file_id is not None
        }
        missing = [entry for entry in entries if entry.file_id is None]
        if missing:
            ids.update(self._lookup_file_ids(upload, missing))
        return ids

    def _lookup_file_ids(
        self, upload: Upload, missing: list[FileEntry]
    ) -> dict[FileEntry, int | str]:
        """Find file ids through the download policy's transaction description."""
        names = ", ".join(display_name(entry) for entry in missing[:5])
        if upload.transaction_id is None:
            raise TransferError(
                f"the event gives no Files._id for {names} and no Transactions._id to look "
                "them up by"
            )
        url = f"{self.settings.download_policy_url.rstrip('/')}/{upload.transaction_id}"
        try:
            info = self.retry(lambda: self._get_json(url, "the download policy"))
        except TransferError as exc:
            raise TransferError(
                f"cannot look up the file ids of {names}: {exc}", transient=exc.transient
            ) from None
        known = info.get("files") if isinstance(info, dict) else None
        if not isinstance(known, dict):
            raise TransferError(f"the download policy's answer for {url} lists no files")
        by_path: dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]] = {}
        for file_id, described in known.items():
            if isinstance(described, dict):
                key = (_plain_subdir(str(described.get("subdir", ""))), str(described.get("name")))
                by_path.setdefault(key, []).append((str(file_id), described))
        found: dict[FileEntry, int | str] = {}
        for entry in missing:
            candidates = by_path.get((_plain_subdir(entry.subdir), entry.name), [])
            same_hash = [fid for fid, d in candidates if d.get("hashsum") == entry.hashsum]
            chosen = same_hash or [fid for fid, _ in candidates]
            if not chosen:
                raise TransferError(
                    f"{display_name(entry)} has no Files._id and transaction "
                    f"{upload.transaction_id} holds no file of that name"
                )
            found[entry] = int(chosen[0]) if chosen[0].isdigit() else chosen[0]
        return found

    def _get_json(self, url: str, what: str) -> Any:
        try:
            response = self.session.get(url)
        except (requests.RequestException, OSError) as exc:
            raise classify(exc, what) from None
        try:
            return response.json()
        except ValueError:
            raise TransferError(f"{what} answered {url} with something that is not JSON") from None

    def _download_once(
        self,
        destinations: dict[FileEntry, Path],
        file_ids: Mapping[FileEntry, int | str],
        wait_seconds: float | None = None,
    ) -> dict[FileEntry, Path]:
        """One cart: set it up, wait for it, stream its tar, delete it."""
        from pacifica.downloader.cartapi import CartAPI

        wanted: dict[str, FileEntry] = {}
        request: list[dict[str, Any]] = []
        for index, entry in enumerate(destinations):
            cart_path = f"{index}/{entry.name}"  # our own name: nothing from the event is a path
            wanted[cart_path] = entry
            request.append(
                {
                    "id": file_ids[entry],
                    "path": cart_path,
                    "hashtype": entry.hashtype,
                    "hashsum": entry.hashsum,
                }
            )
        cart_api = CartAPI(
            cart_api_url=self.settings.download_url.rstrip("/"), session=self.session, auth={}
        )
        try:
            cart_url: str = cart_api.setup_cart(lambda: iter(request))
        except AssertionError:
            raise TransferError(
                f"Cartd at {self.settings.download_url} did not create the cart", transient=True
            ) from None
        except (requests.RequestException, OSError) as exc:
            raise classify(exc, "Cartd") from None
        try:
            self._wait_for_cart(cart_url, list(wanted.values()), wait_seconds)
            self._receive_cart(cart_url, wanted, destinations)
        finally:
            with contextlib.suppress(requests.RequestException, OSError):
                self.session.delete(cart_url)
        return destinations

    def _wait_for_cart(
        self, cart_url: str, entries: Sequence[FileEntry], wait_seconds: float | None = None
    ) -> None:
        """Poll the cart until Cartd says it is ready, bounded by the cart timeout."""
        limit = self.settings.cart_timeout_seconds if wait_seconds is None else wait_seconds
        deadline = time.monotonic() + limit
        pause = POLL_FIRST
        status = "unknown"
        while True:
            try:
                response = self.session.head(cart_url)
            except requests.HTTPError as exc:  # Cartd answers 500 for a failed cart
                _raise_cart_failure(cart_url, exc.response, entries, classify(exc, "Cartd"))
            except (requests.RequestException, OSError) as exc:
                raise classify(exc, "Cartd") from None
            status = response.headers.get("X-Pacifica-Status", "unknown")
            if status == "ready":
                return
            if status == "error":
                error = TransferError(f"Cartd cart {cart_url} failed", transient=True)
                _raise_cart_failure(cart_url, response, entries, error)
            if time.monotonic() + pause > deadline:
                raise TransferError(
                    f"Cartd cart {cart_url} was not ready within {limit:g} s (status {status!r})",
                    transient=True,
                )
            self.sleep(pause)
            pause = min(pause * 2, POLL_LONGEST)

    def _receive_cart(
        self, cart_url: str, wanted: dict[str, FileEntry], destinations: dict[FileEntry, Path]
    ) -> None:
        """Stream the cart's tar and copy the members we asked for, verifying each."""
        received: set[str] = set()
        try:
            with self.session.get(
                cart_url, params={"filename": CART_FILENAME}, stream=True
            ) as response:
                if response.status_code != 200:
                    raise TransferError(
                        f"Cartd answered HTTP {response.status_code} instead of the cart "
                        f"{cart_url}: {answer_text(response)}",
                        transient=True,
                    )
                response.raw.decode_content = True
                with tarfile.open(fileobj=response.raw, mode="r|") as archive:
                    for member in archive:
                        cart_path = _inside_top_folder(member.name)
                        entry = wanted.get(cart_path) if member.isfile() else None
                        if entry is None or cart_path in received:
                            continue
                        source = archive.extractfile(member)
                        if source is None:  # pragma: no cover - isfile() members always have data
                            continue
                        with source:
                            copy_verified(source, destinations[entry], entry)
                        received.add(cart_path)
        except TransferError:
            raise
        except (requests.RequestException, tarfile.TarError, EOFError) as exc:
            raise classify(exc, "Cartd") from None
        except OSError as exc:
            raise TransferError(f"cannot write the downloaded files: {exc}") from None
        missing = [display_name(wanted[path]) for path in wanted if path not in received]
        if missing:
            raise TransferError(
                f"Cartd cart {cart_url} lacks {len(missing)} requested file(s): "
                + ", ".join(missing[:10])
            )


def _raise_cart_failure(
    cart_url: str,
    response: requests.Response | None,
    entries: Sequence[FileEntry],
    error: TransferError,
) -> NoReturn:
    """Raise the error of a failed cart: ChecksumMismatch when Cartd found the hash differs.

    Cartd checks each file it stages from the archive against the hash we sent (the event's)
    and fails the whole cart if one differs, without saying which: the message names them all.
    """
    message = answer_text(response)
    if "hash does not match" in message.lower():
        names = ", ".join(display_name(entry) for entry in entries[:10])
        expected = entries[0].hashsum if len(entries) == 1 else "checksums"
        raise ChecksumMismatch(
            names, expected, f"found different by Cartd, which refused the cart ({message})"
        ) from None
    detail = f" ({message})" if message and message not in str(error) else ""
    raise TransferError(f"{error}{detail}", transient=error.transient) from None


def _inside_top_folder(member_name: str) -> str:
    """A tar member's path below the cart's top folder (``data/0/a.csv`` -> ``0/a.csv``)."""
    parts = [part for part in PurePosixPath(member_name).parts if part not in ("", ".")]
    return "/".join(parts[1:])


def _plain_subdir(subdir: str) -> str:
    """A subdir reduced for comparisons: no empty or ``.`` components, no edge slashes."""
    return "/".join(part for part in subdir.split("/") if part not in ("", "."))
