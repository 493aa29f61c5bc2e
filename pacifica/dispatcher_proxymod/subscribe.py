"""Register the proxymod subscription with Pacifica Notifications, and look after it.

Notifications keeps subscriptions (it calls them *event matches*) per user: the user is whoever
the ``Http-Remote-User`` header names (the header name is a Notifications setting), and that
user must have rights on the uploads' project and instrument in Metadata, or the events are
not delivered. The API, as Notifications 0.5 implements it:

* ``GET /eventmatch``: the caller's subscriptions; **403 when the caller has none**;
* ``POST /eventmatch``: create (``name``, ``jsonpath``, ``target_url``, ``auth``, ``extensions``);
* ``GET/PUT/DELETE /eventmatch/<uuid>``: 403 for a uuid that is unknown *or* someone else's;
  a PUT replaces ``auth`` and ``extensions`` with ``{}`` unless it sends them, so every PUT
  here sends them again; DELETE only marks the row deleted;
* an expression jsonpath2 cannot parse, or a body the schema refuses, is answered 500 with a
  traceback.

When a delivery fails (a refused connection, a 4xx or a 5xx) Notifications disables the
subscription: ``disabled`` holds the time and ``error`` the reason, and nothing is delivered
until ``disabled`` is set back to null (:func:`enable`). It never retries deliveries.

By default the subscription is the *broad* expression (every ingest event with a
``proxymod.`` key, see :mod:`.routing`), so an upload that misspells a key still reaches us and
is answered as rejected with what to fix; ``--strict`` registers the routing expression itself,
and then Notifications drops such uploads without a word.

Our subscription is found by name (:data:`DEFAULT_NAME` unless told otherwise), so running
:func:`subscribe` again updates it in place instead of adding a second one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import requests

from .errors import DispatcherError
from .settings import Settings

DEFAULT_NAME: Final = "pacifica-dispatcher-proxymod"
DEFAULT_USER_HEADER: Final = "Http-Remote-User"
DEFAULT_TIMEOUT: Final = 30.0

#: Exit codes of the command besides 0 (done, or enabled) and 2 (an error, as in cli.main).
EXIT_DISABLED: Final = 1
EXIT_NOT_FOUND: Final = 3

_MASK: Final = "********"
_MESSAGE_LIMIT: Final = 400
_EXCEPTION_LINE: Final = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)(:|$)")


class SubscriptionError(DispatcherError):
    """Notifications refused a request, could not be reached, or the input is unusable."""


@dataclass(frozen=True)
class Subscription:
    """One subscription (event match) as Notifications reports it."""

    uuid: str
    name: str
    jsonpath: str
    target_url: str
    user: str
    disabled: str | None = None
    error: str | None = None
    auth: Mapping[str, Any] = field(default_factory=dict)
    extensions: Mapping[str, Any] = field(default_factory=dict)
    created: str | None = None
    updated: str | None = None

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Subscription:
        """Read one entry of Notifications' answer."""
        try:
            return cls(
                uuid=str(document["uuid"]),
                name=str(document["name"]),
                jsonpath=str(document.get("jsonpath", "")),
                target_url=str(document.get("target_url", "")),
                user=str(document.get("user", "")),
                disabled=document.get("disabled"),
                error=document.get("error"),
                auth=dict(document.get("auth") or {}),
                extensions=dict(document.get("extensions") or {}),
                created=document.get("created"),
                updated=document.get("updated"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SubscriptionError(
                f"Notifications answered with a subscription we cannot read ({exc}): "
                f"{json.dumps(document)[:_MESSAGE_LIMIT]}"
            ) from None

    @property
    def enabled(self) -> bool:
        """True unless Notifications disabled it."""
        return not self.disabled

    def to_json(self, reveal_credentials: bool = False) -> dict[str, Any]:
        """The fields as a JSON object; credentials are masked unless asked for."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "user": self.user,
            "target_url": self.target_url,
            "enabled": self.enabled,
            "disabled": self.disabled,
            "error": self.error,
            "auth": dict(self.auth) if reveal_credentials else masked_auth(self.auth),
            "extensions": dict(self.extensions),
            "created": self.created,
            "updated": self.updated,
            "jsonpath": self.jsonpath,
        }

    def describe(self) -> str:
        """One line for people: name, uuid, target and state (with Notifications' error)."""
        state = "enabled" if self.enabled else f"DISABLED since {self.disabled}"
        line = f"subscription {self.name!r} ({self.uuid}) of {self.user} -> {self.target_url}: "
        line += state
        if self.error:
            line += f"; Notifications recorded: {_one_line(self.error)}"
        return line


def masked_auth(auth: Mapping[str, Any]) -> dict[str, Any]:
    """``auth`` with the password or token replaced by asterisks."""
    shown: dict[str, Any] = json.loads(json.dumps(dict(auth)))
    basic = shown.get("basic")
    if isinstance(basic, dict) and "password" in basic:
        basic["password"] = _MASK
    header = shown.get("header")
    if isinstance(header, dict) and "credentials" in header:
        header["credentials"] = _MASK
    return shown


def delivery_auth(
    settings: Settings,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The ``auth`` object that makes Notifications' deliveries pass our ``/receive``.

    Explicit values win; without any, the service's own ``DISPATCHER_AUTH*`` settings are
    used, so the subscription carries exactly the credentials ``/receive`` demands.
    An empty dict means no credentials.
    """
    if token and (username or password):
        raise SubscriptionError("give either a bearer token or basic credentials, not both")
    if token:
        return bearer_auth(token)
    if username or password:
        if not username:
            raise SubscriptionError("--auth-password needs --auth-user")
        secret = password
        if secret is None and settings.auth == "basic" and settings.auth_username == username:
            secret = settings.auth_password
        if not secret:
            raise SubscriptionError(
                f"no password for delivery user {username!r}: give --auth-password or "
                "DISPATCHER_AUTH_PASSWORD"
            )
        return basic_auth(username, secret)
    if settings.auth == "basic" and settings.auth_username and settings.auth_password:
        return basic_auth(settings.auth_username, settings.auth_password)
    if settings.auth == "bearer" and settings.auth_token:
        return bearer_auth(settings.auth_token)
    return {}


def basic_auth(username: str, password: str) -> dict[str, Any]:
    """Notifications' ``auth`` for HTTP basic credentials."""
    return {"type": "basic", "basic": {"username": username, "password": password}}


def bearer_auth(token: str) -> dict[str, Any]:
    """Notifications' ``auth`` that sends ``Authorization: Bearer <token>``."""
    return {"type": "header", "header": {"type": "Bearer", "credentials": token}}


def check_expression(expression: str) -> None:
    """Raise SubscriptionError unless jsonpath2 (what Notifications uses) parses ``expression``."""
    from jsonpath2.path import Path

    if not expression.strip():
        raise SubscriptionError("the subscription expression is empty")
    try:
        Path.parse_str(expression)
    except Exception as exc:  # antlr raises assorted errors for bad input
        detail = _one_line(str(exc)) or type(exc).__name__
        raise SubscriptionError(f"jsonpath2 cannot parse the expression: {detail}") from None


def narrow_expression(expression: str, required: Mapping[str, str]) -> str:
    """``expression`` that also requires each TransactionKeyValue ``key = value`` in ``required``.

    For an operator who wants only some uploads (a site, a campaign), and for tests that share
    a Notifications with others. ``expression`` must be a filter ``$[?( ... )]`` as ours is.
    """
    if not required:
        return expression
    body = expression.rstrip()
    if not (body.startswith("$[?(") and body.endswith(")]")):
        raise SubscriptionError("only an expression of the form $[?( ... )] can be narrowed")
    conditions = []
    for key, value in required.items():
        conditions.append(
            '  and $["data"][*][?(@["destinationTable"] = "TransactionKeyValue" and '
            f'@["key"] = {_literal(key)} and @["value"] = {_literal(value)})]'
        )
    return body[: -len(")]")].rstrip() + "\n" + "\n".join(conditions) + "\n)]\n"


def _literal(text: str) -> str:
    """A jsonpath2 string literal (there are no escapes, so some characters cannot be said)."""
    if not text or any(char in '"\\' or ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise SubscriptionError(
            f"{text!r} cannot be matched: it is empty or holds a quote, backslash or control "
            "character"
        )
    return f'"{text}"'


def _network_cause(exc: BaseException) -> str:
    """The operating system's words for a failed connection (``Connection refused``...)."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return found.group(1).strip() if found else _one_line(str(exc))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:_MESSAGE_LIMIT]


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
        self.session = session or requests.Session()
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
                f"that is not JSON: {_one_line(response.text)}"
            ) from None

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        allow_forbidden: bool = False,
    ) -> requests.Response | None:
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
        return _one_line(response.text) or response.reason
    if not isinstance(body, dict):
        return _one_line(json.dumps(body))
    traceback = str(body.get("traceback") or "")
    lines = [line.strip() for line in traceback.strip().splitlines() if line.strip()]
    if lines:
        # the last "SomeError: ..." line says what went wrong (a jsonschema message goes on
        # for lines after it); the last frame's file names the component that raised
        raised = [line for line in lines if _EXCEPTION_LINE.match(line)]
        frames = [line for line in lines if line.startswith("File ")]
        cause = raised[-1] if raised else lines[-1]
        return _one_line(f"{cause} (at {frames[-1]})" if frames else cause)
    return _one_line(str(body.get("message") or response.reason))


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Registration:
    """What :func:`subscribe` did: ``action`` is "created" or "updated"."""

    action: str
    subscription: Subscription
    duplicates: tuple[Subscription, ...] = ()


def subscription_body(
    name: str,
    jsonpath: str,
    target_url: str,
    auth: Mapping[str, Any],
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON Notifications wants for a new or updated subscription."""
    if not name:
        raise SubscriptionError("the subscription needs a name")
    if not target_url.startswith(("http://", "https://")):
        raise SubscriptionError(f"the target URL {target_url!r} is not http(s)")
    check_expression(jsonpath)
    body: dict[str, Any] = {
        "name": name,
        "jsonpath": jsonpath,
        "target_url": target_url,
        "extensions": dict(extensions or {}),
    }
    if auth:  # Notifications' schema refuses an empty auth object; left out, it stores {}
        body["auth"] = dict(auth)
    return body


def subscribe(
    client: NotificationsClient,
    name: str,
    target_url: str,
    jsonpath: str,
    auth: Mapping[str, Any],
    extensions: Mapping[str, Any] | None = None,
) -> Registration:
    """Create the subscription ``name``, or update it in place when the user already has it.

    An update keeps a disabled subscription disabled (see :func:`enable`). If several of the
    user's subscriptions share the name, the oldest is updated and the others are returned
    as ``duplicates``.
    """
    body = subscription_body(name, jsonpath, target_url, auth, extensions)
    existing = client.find(name)
    if not existing:
        return Registration("created", client.create(body))
    updated = client.update(existing[0].uuid, body)
    return Registration("updated", updated, tuple(existing[1:]))


def find_one(client: NotificationsClient, name: str) -> Subscription | None:
    """The user's (oldest) subscription called ``name``, or None."""
    found = client.find(name)
    return found[0] if found else None


def enable(client: NotificationsClient, name: str) -> Subscription:
    """Re-enable the subscription ``name`` after Notifications disabled it; clears its error.

    Its ``auth`` and ``extensions`` are sent back unchanged (a PUT without them clears them).
    """
    current = find_one(client, name)
    if current is None:
        raise SubscriptionError(f"user {client.user!r} has no subscription named {name!r}")
    body: dict[str, Any] = {
        "disabled": None,
        "error": None,
        "extensions": dict(current.extensions),
    }
    if current.auth:
        body["auth"] = dict(current.auth)
    return client.update(current.uuid, body)


def unsubscribe(client: NotificationsClient, name: str) -> list[str]:
    """Delete every subscription of the user called ``name``; their uuids."""
    removed = []
    for sub in client.find(name):
        client.delete(sub.uuid)
        removed.append(sub.uuid)
    return removed


# --------------------------------------------------------------------------- command line


def add_subscribe_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pacifica-dispatcher-proxymod subscribe``."""
    parser.add_argument("--notifications-url", required=True, help="e.g. http://host:8070")
    parser.add_argument(
        "--user", required=True, help="the Metadata network_id that owns the subscription"
    )
    parser.add_argument(
        "--user-header",
        default=DEFAULT_USER_HEADER,
        help=f"header that names the user to Notifications (default {DEFAULT_USER_HEADER})",
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"default {DEFAULT_NAME}")
    parser.add_argument("--target-url", help="where events go: our /receive URL")
    parser.add_argument("--auth-user", help="basic credentials for deliveries (user)")
    parser.add_argument("--auth-password", help="basic credentials for deliveries (password)")
    parser.add_argument("--auth-token", help="bearer token for deliveries")
    parser.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also require this TransactionKeyValue (repeatable)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="subscribe with the routing expression: uploads that get a proxymod key wrong "
        "are then not delivered (the default takes every upload with a proxymod. key)",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify Notifications' TLS certificate"
    )
    actions = parser.add_mutually_exclusive_group()
    actions.add_argument("--status", action="store_true", help="show the subscription and exit")
    actions.add_argument(
        "--enable", action="store_true", help="re-enable a disabled subscription and exit"
    )
    actions.add_argument("--delete", action="store_true", help="delete the subscription and exit")
    actions.add_argument(
        "--print-expression", action="store_true", help="print the jsonpath and exit"
    )


def parse_requirements(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; SubscriptionError for a malformed one."""
    required: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value:
            raise SubscriptionError(f"--require {item!r}: expected KEY=VALUE")
        required[key.strip()] = value
    return required


def expression_for(settings: Settings, required: Mapping[str, str], *, strict: bool = False) -> str:
    """The jsonpath to register for ``settings``: broad, or the strict route; narrowed if asked."""
    from .routing import subscription_expression

    return narrow_expression(subscription_expression(settings, strict=strict), required)


def run_subscribe(settings: Settings, args: argparse.Namespace) -> int:
    """The ``subscribe`` command; returns the exit code (errors raise SubscriptionError)."""
    required = parse_requirements(args.require)
    jsonpath = expression_for(settings, required, strict=args.strict)
    if args.print_expression:
        print(jsonpath, end="" if jsonpath.endswith("\n") else "\n")
        return 0
    client = NotificationsClient(
        args.notifications_url,
        args.user,
        user_header=args.user_header,
        timeout=args.timeout,
        verify=not args.insecure,
    )
    if args.status:
        current = find_one(client, args.name)
        if current is None:
            print(f"user {args.user!r} has no subscription named {args.name!r}")
            return EXIT_NOT_FOUND
        _show(current)
        return 0 if current.enabled else EXIT_DISABLED
    if args.enable:
        enabled = enable(client, args.name)
        print(f"enabled: {enabled.describe()}")
        return 0
    if args.delete:
        removed = unsubscribe(client, args.name)
        if not removed:
            print(f"user {args.user!r} has no subscription named {args.name!r}")
            return EXIT_NOT_FOUND
        print(f"deleted subscription {args.name!r}: {', '.join(removed)}")
        return 0
    if not args.target_url:
        raise SubscriptionError("--target-url is needed to subscribe (our /receive URL)")
    auth = delivery_auth(settings, args.auth_user, args.auth_password, args.auth_token)
    done = subscribe(client, args.name, args.target_url, jsonpath, auth)
    print(f"{done.action}: {done.subscription.describe()}")
    if not auth:
        print("note: deliveries carry no credentials (DISPATCHER_AUTH is none)", file=sys.stderr)
    for other in done.duplicates:
        print(
            f"warning: user {args.user!r} has another subscription named {args.name!r} "
            f"({other.uuid}); events may arrive twice. Remove it with "
            "--delete and subscribe again.",
            file=sys.stderr,
        )
    if not done.subscription.enabled:
        print("warning: the subscription is disabled; run with --enable", file=sys.stderr)
    return 0


def _show(subscription: Subscription) -> None:
    print(subscription.describe())
    print(json.dumps(subscription.to_json(), indent=2))
