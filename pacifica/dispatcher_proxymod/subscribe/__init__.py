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

``subscription`` is one subscription as Notifications reports it (and :class:`SubscriptionError`),
``client`` its API, ``expression`` the jsonpath checked and narrowed, ``auth`` the delivery
credentials, ``operations`` subscribe/find/enable/unsubscribe, ``command`` the CLI command.
"""

from __future__ import annotations

from .auth import basic_auth, bearer_auth, delivery_auth
from .client import DEFAULT_TIMEOUT, DEFAULT_USER_HEADER, NotificationsClient
from .command import (
    DEFAULT_NAME,
    EXIT_DISABLED,
    EXIT_NOT_FOUND,
    add_subscribe_arguments,
    expression_for,
    parse_requirements,
    run_subscribe,
)
from .expression import check_expression, narrow_expression
from .operations import Registration, enable, find_one, subscribe, subscription_body, unsubscribe
from .subscription import Subscription, SubscriptionError, masked_auth

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_HEADER",
    "EXIT_DISABLED",
    "EXIT_NOT_FOUND",
    "NotificationsClient",
    "Registration",
    "Subscription",
    "SubscriptionError",
    "add_subscribe_arguments",
    "basic_auth",
    "bearer_auth",
    "check_expression",
    "delivery_auth",
    "enable",
    "expression_for",
    "find_one",
    "masked_auth",
    "narrow_expression",
    "parse_requirements",
    "run_subscribe",
    "subscribe",
    "subscription_body",
    "unsubscribe",
]
