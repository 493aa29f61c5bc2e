"""The transfer that talks to a real Pacifica: Cartd for downloads, Ingest for uploads.

Downloads ask Cartd (through pacifica-downloader's ``CartAPI``) for a cart holding exactly the
requested files, wait until it is ready, and read its tar as a stream: every member we asked for
is copied to disk in chunks while its checksum is computed; nothing else in the tar is touched.

Uploads bundle the result tree with pacifica-uploader's ``Bundler`` into a temporary tar on disk
(``data/<relative path>`` plus ``metadata.txt``), post it to Ingest with ``Uploader`` and poll the
job until Ingest reports it ingested or failed. The job id is the new transaction's id.

All HTTP goes through one ``requests`` session with a timeout on every request, the configured
TLS verification and credentials, and a hook that turns HTTP error answers into exceptions, so
each failure can be classed as transient (worth a retry) or not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import requests
from requests.adapters import HTTPAdapter

from ..errors import ChecksumMismatch, TransferError
from ..settings import PacificaSettings
from .base import (
    Delivery,
    ResultFile,
    Transfer,
    copy_verified,
    destination_for,
    display_name,
    list_result_files,
    new_hash,
    open_regular_file,
)

if TYPE_CHECKING:
    from ..events import Event, FileEntry, Upload

_T = TypeVar("_T")

LOGGER = logging.getLogger(__name__)

#: The cart's tar is requested under this name; Cartd uses it as the tar's top folder.
CART_FILENAME = "data"

#: Ingest's job states that end the wait.
_INGEST_DONE_TASK = "ingest metadata"

#: Shortest and longest pause between two polls of Cartd or Ingest, in seconds.
_POLL_FIRST = 0.2
_POLL_LONGEST = 2.0
#: Longest pause between two polls of an Ingest job (a finished job ends the task sooner).
_INGEST_POLL_LONGEST = 0.5
#: How long a cart of several files may stage before we fall back to one cart per file
#: (a stalled multi-file cart otherwise costs the whole cart timeout).
MULTI_FILE_CART_WAIT = 30.0

#: HTTP statuses worth a retry besides 5xx.
_TRANSIENT_STATUSES = frozenset({408, 425, 429})

#: How much of an error answer's body goes into a message.
_BODY_LIMIT = 500


class _TimeoutAdapter(HTTPAdapter):
    """An adapter that gives every request a timeout unless the caller set one."""

    def __init__(self, timeout: float, retries: int) -> None:
        super().__init__(max_retries=retries)
        self.timeout = timeout

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, *args, **kwargs)


def _raise_for_status(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Response hook: HTTP 4xx/5xx become ``requests.HTTPError`` carrying the response.

    The (small) error body is read and the connection released first, also for streamed
    requests, so the message can quote it and no socket is left open.
    """
    if response.status_code >= 400:
        try:
            response.content  # noqa: B018 - reads the body so that it outlives the connection
        except requests.RequestException:
            pass
        finally:
            response.close()
        response.raise_for_status()


def make_session(settings: PacificaSettings) -> requests.Session:
    """A session with a timeout on every request, our credentials and TLS choice."""
    session = requests.Session()
    adapter = _TimeoutAdapter(settings.request_timeout_seconds, retries=1)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = settings.verify
    auth = settings.requests_auth().get("auth")
    if auth is not None:
        session.auth = auth
    session.hooks["response"].append(_raise_for_status)
    return session


def _answer_text(response: requests.Response | None) -> str:
    """The start of an error answer's body, or its Cartd status message."""
    if response is None:
        return ""
    message = response.headers.get("X-Pacifica-Message")
    if message:
        return without_traceback(message)
    try:
        body = response.text
    except (requests.RequestException, UnicodeError):
        return ""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        parsed = json.loads(body)
        body = str(parsed.get("message") or parsed.get("error") or body)
    return without_traceback(body)


def classify(exc: BaseException, what: str) -> TransferError:
    """A TransferError for a failure of ``what`` (e.g. "Cartd"); transient if a retry may help."""
    if isinstance(exc, TransferError):
        return exc
    if isinstance(exc, requests.HTTPError):
        response = exc.response
        status = response.status_code if response is not None else 0
        transient = status >= 500 or status in _TRANSIENT_STATUSES
        text = _answer_text(response)
        url = response.url if response is not None else "?"
        detail = f": {text}" if text else ""
        return TransferError(
            f"{what} answered HTTP {status} for {url}{detail}", transient=transient
        )
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return TransferError(f"{what} is unreachable: {exc}", transient=True)
    if isinstance(exc, requests.RequestException | tarfile.TarError | EOFError):
        return TransferError(f"{what} transfer broke off: {exc}", transient=True)
    return TransferError(f"{what} failed: {exc}")


class PacificaTransfer(Transfer):
    """Download through Cartd, upload through Ingest."""

    kind = "pacifica"

    def __init__(
        self,
        settings: PacificaSettings,
        bundle_dir: Path | None = None,
        attempts: int = 3,
        backoff_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.bundle_dir = bundle_dir
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.session = make_session(settings)

    # ------------------------------------------------------------------ download

    def download(
        self, event: Event, upload: Upload, files: Sequence[FileEntry], dest_dir: Path
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
            fetched.update(self._with_retries(partial(self._download_once, single, file_ids)))
        return fetched

    def _with_retries(self, action: Callable[[], _T]) -> _T:
        """Run ``action``; on a transient TransferError wait and try again, up to ``attempts``."""
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except TransferError as exc:
                if not exc.transient or attempt == self.attempts:
                    raise
            self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

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
            info = self._with_retries(lambda: self._get_json(url, "the download policy"))
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
        pause = _POLL_FIRST
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
            pause = min(pause * 2, _POLL_LONGEST)

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
                        f"{cart_url}: {_answer_text(response)}",
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

    # ------------------------------------------------------------------ upload

    def upload(self, upload: Upload, result_dir: Path, key_values: Mapping[str, str]) -> Delivery:
        """Bundle ``result_dir`` on disk, post it to Ingest and wait until it is ingested."""
        metadata = bundle_metadata(upload, key_values)
        results = list_result_files(result_dir)
        bundle_dir = self.bundle_dir if self.bundle_dir is not None else Path(result_dir).parent
        bundle_dir.mkdir(parents=True, exist_ok=True)
        fd, bundle_name = tempfile.mkstemp(prefix="bundle-", suffix=".tar", dir=bundle_dir)
        bundle = Path(bundle_name)
        try:
            with os.fdopen(fd, "wb") as out:
                write_bundle(metadata, results, out)
            job_id = self._post_bundle(bundle)
        finally:
            with contextlib.suppress(FileNotFoundError):
                bundle.unlink()
        self._wait_for_ingest(job_id)
        location = f"{self.settings.upload_status_url}?job_id={job_id}"
        return Delivery(location=location, transaction_id=int(job_id), job_id=str(job_id))

    def _uploader(self) -> Any:
        from pacifica.uploader import Uploader

        uploader = Uploader(
            upload_url=self.settings.upload_url,
            status_url=self.settings.upload_status_url,
            auth={},
        )
        uploader.session = self.session  # our timeouts, credentials and error hook
        return uploader

    def _post_bundle(self, bundle: Path) -> int:
        """Send the bundle to Ingest (streamed from disk) and return the job id."""
        uploader = self._uploader()
        try:
            with bundle.open("rb") as stream:
                job_id = uploader.upload(stream, content_length=bundle.stat().st_size)
        except (requests.RequestException, OSError) as exc:
            raise classify(exc, "Ingest") from None
        except (KeyError, ValueError, TypeError):
            raise TransferError(
                f"Ingest at {self.settings.upload_url} accepted the bundle but gave no job id",
            ) from None
        try:
            return int(job_id)
        except (TypeError, ValueError):
            raise TransferError(f"Ingest gave a job id that is not a number: {job_id!r}") from None

    def _wait_for_ingest(self, job_id: int) -> dict[str, Any]:
        """Poll Ingest until the job is ingested (returned) or failed (TransferError).

        Connection trouble while polling is waited out until the deadline: the bundle is already
        with Ingest, so giving up early would only invite a duplicate upload.
        """
        uploader = self._uploader()
        timeout = self.settings.ingest_timeout_seconds
        deadline = time.monotonic() + timeout
        pause = _POLL_FIRST
        last: Any = None
        while True:
            try:
                last = uploader.getstate(job_id)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"unreachable: {exc}"
            except requests.HTTPError as exc:
                error = classify(exc, "Ingest")
                if not error.transient:
                    raise TransferError(f"Ingest job {job_id}: {error}", transient=False) from None
                last = str(error)
            except ValueError:
                last = "an answer that is not JSON"
            if isinstance(last, dict):
                verdict = ingest_verdict(last)
                if verdict == "done":
                    return last
                if verdict == "failed":
                    raise TransferError(
                        f"Ingest job {job_id} failed in task {last.get('task')!r}: "
                        f"{without_traceback(str(last.get('exception') or 'no reason given'))}",
                        transient=False,
                    )
            if time.monotonic() + pause > deadline:
                raise TransferError(
                    f"Ingest job {job_id} did not finish within {timeout:g} s (last state: "
                    f"{_short(last)}); it may still complete, so check it before uploading again",
                    transient=False,
                )
            self.sleep(pause)
            pause = min(pause * 2, _INGEST_POLL_LONGEST)


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
    message = _answer_text(response)
    if "hash does not match" in message.lower():
        names = ", ".join(display_name(entry) for entry in entries[:10])
        expected = entries[0].hashsum if len(entries) == 1 else "checksums"
        raise ChecksumMismatch(
            names, expected, f"found different by Cartd, which refused the cart ({message})"
        ) from None
    detail = f" ({message})" if message and message not in str(error) else ""
    raise TransferError(f"{error}{detail}", transient=error.transient) from None


def ingest_verdict(state: Mapping[str, Any]) -> str:
    """``"done"``, ``"failed"`` or ``"running"`` for one Ingest job state."""
    if str(state.get("state", "")).upper() == "FAILED":
        return "failed"
    try:
        percent = float(state.get("task_percent", 0))
    except (TypeError, ValueError):
        percent = 0.0
    if (
        str(state.get("state", "")).upper() == "OK"
        and state.get("task") == _INGEST_DONE_TASK
        and percent >= 100
    ):
        return "done"
    return "running"


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


def _inside_top_folder(member_name: str) -> str:
    """A tar member's path below the cart's top folder (``data/0/a.csv`` -> ``0/a.csv``)."""
    parts = [part for part in PurePosixPath(member_name).parts if part not in ("", ".")]
    return "/".join(parts[1:])


def _plain_subdir(subdir: str) -> str:
    """A subdir reduced for comparisons: no empty or ``.`` components, no edge slashes."""
    return "/".join(part for part in subdir.split("/") if part not in ("", "."))


def without_traceback(text: str) -> str:
    """A server's error text without the Python traceback Pacifica services append to it."""
    lowered = text.lower()
    cut = lowered.find("traceback")
    if cut > 0:
        text = text[:cut].rstrip(' ("\\,\n')
    elif cut == 0:  # nothing but a traceback: its last line names the exception
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else text
    return " ".join(text.split())[:_BODY_LIMIT]


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, dict) else str(value)
    return text[:_BODY_LIMIT]
