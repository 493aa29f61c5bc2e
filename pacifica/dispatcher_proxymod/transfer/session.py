"""Talking to Pacifica over HTTP: one session, what its failures mean, retries and poll pauses.

All HTTP goes through one ``requests`` session with a timeout on every request, the configured
TLS verification and credentials, and a hook that turns HTTP error answers into exceptions, so
each failure can be classed as transient (worth a retry) or not (:func:`classify`).
"""

from __future__ import annotations

import contextlib
import json
import tarfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from ..errors import TransferError
from ..settings import PacificaSettings

_T = TypeVar("_T")

#: Shortest and longest pause between two polls of Cartd or Ingest, in seconds.
POLL_FIRST = 0.2
POLL_LONGEST = 2.0

#: HTTP statuses worth a retry besides 5xx.
_TRANSIENT_STATUSES = frozenset({408, 425, 429})

#: How much of an error answer's body goes into a message.
BODY_LIMIT = 500


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


def answer_text(response: requests.Response | None) -> str:
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
        text = answer_text(response)
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


class Retry:
    """Runs an action; on a transient TransferError waits and tries again, up to ``attempts``.

    The pause doubles from ``backoff_seconds`` after each failed attempt.
    """

    def __init__(
        self, attempts: int, backoff_seconds: float, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    def __call__(self, action: Callable[[], _T]) -> _T:
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except TransferError as exc:
                if not exc.transient or attempt == self.attempts:
                    raise
            self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover


def without_traceback(text: str) -> str:
    """A server's error text without the Python traceback Pacifica services append to it."""
    lowered = text.lower()
    cut = lowered.find("traceback")
    if cut > 0:
        text = text[:cut].rstrip(' ("\\,\n')
    elif cut == 0:  # nothing but a traceback: its last line names the exception
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else text
    return " ".join(text.split())[:BODY_LIMIT]


def short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, dict) else str(value)
    return text[:BODY_LIMIT]
