"""Tests of subscribe.expression: the jsonpath checked as Notifications parses it, narrowed."""

from __future__ import annotations

import pytest

from pacifica.dispatcher_proxymod.proxymod.routing import subscription_expression
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.subscribe import (
    SubscriptionError,
    check_expression,
    narrow_expression,
)


@pytest.mark.parametrize("value", ['say "hi"', "back\\slash", "line\nbreak", ""])
def test_narrowing_refuses_what_jsonpath2_cannot_say(value: str) -> None:
    with pytest.raises(SubscriptionError, match="cannot be matched"):
        narrow_expression(subscription_expression(Settings()), {"k": value})


def test_narrowing_needs_a_filter_expression() -> None:
    with pytest.raises(SubscriptionError, match=r"\$\[\?\("):
        narrow_expression('$["eventType"]', {"k": "v"})


def test_bad_expressions_are_caught_before_sending() -> None:
    check_expression(subscription_expression(Settings()))
    for bad in ("$[?(", "", "not a path"):
        with pytest.raises(SubscriptionError, match="expression"):
            check_expression(bad)
