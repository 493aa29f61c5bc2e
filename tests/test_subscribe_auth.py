"""Tests of subscribe.auth: the credentials a subscription carries, masked when shown."""

from __future__ import annotations

import json

import pytest

from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.subscribe import (
    Subscription,
    SubscriptionError,
    basic_auth,
    bearer_auth,
    delivery_auth,
    masked_auth,
)


def test_delivery_credentials_follow_the_settings_unless_given() -> None:
    none = Settings()
    basic = Settings(auth="basic", auth_username="svc", auth_password="s3cret")
    bearer = Settings(auth="bearer", auth_token="tok")
    assert delivery_auth(none) == {}
    assert delivery_auth(basic) == basic_auth("svc", "s3cret")
    assert delivery_auth(bearer) == {
        "type": "header",
        "header": {"type": "Bearer", "credentials": "tok"},
    }
    assert delivery_auth(bearer, username="a", password="b") == basic_auth("a", "b")
    assert delivery_auth(basic, token="t2") == bearer_auth("t2")
    assert delivery_auth(basic, username="svc") == basic_auth("svc", "s3cret")
    with pytest.raises(SubscriptionError, match="no password"):
        delivery_auth(basic, username="other")
    with pytest.raises(SubscriptionError, match="needs --auth-user"):
        delivery_auth(none, password="p")
    with pytest.raises(SubscriptionError, match="not both"):
        delivery_auth(none, username="a", password="b", token="t")


def test_credentials_are_masked_when_shown() -> None:
    assert masked_auth(basic_auth("u", "pw")) == {
        "type": "basic",
        "basic": {"username": "u", "password": "********"},
    }
    assert masked_auth(bearer_auth("tok"))["header"]["credentials"] == "********"
    shown = Subscription("id", "n", "$", "http://t", "u", auth=bearer_auth("tok")).to_json()
    assert "tok" not in json.dumps(shown)
