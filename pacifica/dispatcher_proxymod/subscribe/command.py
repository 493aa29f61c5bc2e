"""The ``pacifica-dispatcher-proxymod subscribe`` command: its options and what it prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Final

from ..settings import Settings
from .auth import delivery_auth
from .client import DEFAULT_TIMEOUT, DEFAULT_USER_HEADER, NotificationsClient
from .expression import narrow_expression
from .operations import enable, find_one, subscribe, unsubscribe
from .subscription import Subscription, SubscriptionError

DEFAULT_NAME: Final = "pacifica-dispatcher-proxymod"
#: Exit codes of the command besides 0 (done, or enabled) and 2 (an error, as in cli.main).
EXIT_DISABLED: Final = 1
EXIT_NOT_FOUND: Final = 3


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
    from ..proxymod.routing import subscription_expression

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
