"""The subscription API of one Notifications service, and its refusals said in words to act on."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from .subscription import Subscription, SubscriptionError, one_line

DEFAULT_USER_HEADER: Final = "Http-Remote-User"
DEFAULT_TIMEOUT: Final = 30.0
_EXCEPTION_LINE: Final = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)(:|$)")

if TYPE_CHECKING:
    import requests


def _network_cause(exc: BaseException) -> str:
    """The operating system's words for a failed connection (``Connection refused``...)."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return found.group(1).strip() if found else one_line(str(exc))


class NotificationsClient:
    """The subscription API of one Notifications service, as one user."""

    def __init__(
        self,
        url: str,
        user: str,
        user_header: str = DEFAULT_USER_HEADER,
        timeout: float = DEFAULT_TIMEOUT,
        verify: bool = True,
        session: requests.Session | None = None,
    ) -> None:
        if not user:
            raise SubscriptionError("a Notifications user is needed (--user)")
        if not url.startswith(("http://", "https://")):
            raise SubscriptionError(f"the Notifications URL {url!r} is not http(s)")
        self.url = url.rstrip("/")
        self.user = user
        self.user_header = user_header
        self.timeout = timeout
        if session is None:
            # imported here: the web process, which imports cli (and so this package), never
            # talks to Notifications and need not load requests (about 5 MiB of its memory)
            import requests

            session = requests.Session()
        self.session = session
        self.session.verify = verify

    def subscriptions(self) -> list[Subscription]:
        """Every live subscription of the user; none (not an error) when Notifications says 403."""
        response = self._request("GET", "/eventmatch", allow_forbidden=True)
        if response is None:
            return []
        body = self._json(response)
        if not isinstance(body, list):
            raise SubscriptionError(f"GET {self.url}/eventmatch did not answer a list")
        return [Subscription.from_json(entry) for entry in body]

    def find(self, name: str) -> list[Subscription]:
        """The user's subscriptions called ``name``, oldest first."""
        found = [sub for sub in self.subscriptions() if sub.name == name]
        return sorted(found, key=lambda sub: (sub.created or "", sub.uuid))

    def get(self, uuid: str) -> Subscription:
        """One subscription by uuid."""
        return self._one(self._request("GET", f"/eventmatch/{uuid}"))

    def create(self, body: Mapping[str, Any]) -> Subscription:
        """POST a new subscription."""
        return self._one(self._request("POST", "/eventmatch", body=body))

    def update(self, uuid: str, body: Mapping[str, Any]) -> Subscription:
        """PUT changes (send ``auth`` and ``extensions`` too, or Notifications clears them)."""
        return self._one(self._request("PUT", f"/eventmatch/{uuid}", body=body))

    def delete(self, uuid: str) -> None:
        """DELETE (Notifications keeps the row, marked deleted)."""
        self._request("DELETE", f"/eventmatch/{uuid}")

    def _one(self, response: requests.Response | None) -> Subscription:
        body = self._json(response) if response is not None else None
        if isinstance(body, list) and len(body) == 1:
            body = body[0]
        if not isinstance(body, dict):
            raise SubscriptionError("Notifications did not answer with one subscription")
        return Subscription.from_json(body)

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SubscriptionError(
                f"Notifications answered {response.request.method} {response.url} with something "
                f"that is not JSON: {one_line(response.text)}"
            ) from None

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        allow_forbidden: bool = False,
    ) -> requests.Response | None:
        import requests

        url = self.url + path
        try:
            response = self.session.request(
                method,
                url,
                headers={self.user_header: self.user},
                json=dict(body) if body is not None else None,
                timeout=self.timeout,
            )
        except requests.ConnectionError as exc:
            raise SubscriptionError(
                f"cannot reach Notifications at {self.url} ({_network_cause(exc)})"
            ) from None
        except requests.Timeout:
            raise SubscriptionError(
                f"Notifications at {self.url} did not answer {method} {path} within "
                f"{self.timeout:g} s"
            ) from None
        except requests.RequestException as exc:
            raise SubscriptionError(f"{method} {url} failed: {exc}") from None
        if response.status_code == 403 and allow_forbidden:
            return None
        if response.status_code >= 400:
            raise SubscriptionError(self._refusal(method, path, response))
        return response

    def _refusal(self, method: str, path: str, response: requests.Response) -> str:
        """Why Notifications refused a request, in words a user can act on."""
        status = response.status_code
        if status == 403:
            return (
                f"Notifications answered 403 to {method} {path}: no such subscription for user "
                f"{self.user!r} (it is unknown, deleted or another user's; the user is sent in "
                f"the {self.user_header} header)"
            )
        cause = _server_cause(response)
        traceback = _traceback(response)
        if status == 500 and "validate_jsonpath" in traceback:
            return f"Notifications refused the expression (jsonpath2 cannot parse it): {cause}"
        if status == 500 and "jsonschema" in traceback:
            return f"Notifications refused the subscription's fields: {cause}"
        return f"Notifications answered HTTP {status} to {method} {path}: {cause}"


def _traceback(response: requests.Response) -> str:
    """The traceback CherryPy put in an error answer ("" if none)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("traceback") or "") if isinstance(body, dict) else ""


def _server_cause(response: requests.Response) -> str:
    """The useful part of a CherryPy error answer: the traceback's last lines, or its message."""
    try:
        body = response.json()
    except ValueError:
        return one_line(response.text) or response.reason
    if not isinstance(body, dict):
        return one_line(json.dumps(body))
    traceback = str(body.get("traceback") or "")
    lines = [line.strip() for line in traceback.strip().splitlines() if line.strip()]
    if lines:
        # the last "SomeError: ..." line says what went wrong (a jsonschema message goes on
        # for lines after it); the last frame's file names the component that raised
        raised = [line for line in lines if _EXCEPTION_LINE.match(line)]
        frames = [line for line in lines if line.startswith("File ")]
        cause = raised[-1] if raised else lines[-1]
        return one_line(f"{cause} (at {frames[-1]})" if frames else cause)
    return one_line(str(body.get("message") or response.reason))
