"""The ``subscribe`` command: argument handling here, and the real Notifications of the stack.

Tests marked ``integration`` talk to the Notifications service that
``tests/integration/stack/pacifica_stack.py up`` runs; they are skipped, with the reason, when
it is not up, except under ``CI=true`` with ``DISPATCHER_INTEGRATION=1``, where that fails them.
Every subscription made here has a unique name and a jsonpath that matches only this run's
uploads, and is deleted afterwards: other people share the stack.
"""

from __future__ import annotations

import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_EVENT, edited_event
from jsonpath2.path import Path as JsonPath
from pacifica_stack_finder import find_stack

from pacifica.dispatcher_proxymod import cli
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.proxymod.routing import match, subscription_expression
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.subscribe import (
    DEFAULT_NAME,
    EXIT_DISABLED,
    EXIT_NOT_FOUND,
    NotificationsClient,
    SubscriptionError,
    basic_auth,
    bearer_auth,
    enable,
    expression_for,
    find_one,
    narrow_expression,
    parse_requirements,
    subscribe,
    unsubscribe,
)

CLOSED_PORT_URL = "http://127.0.0.1:1"


def _events(marker: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The example event, and a copy that carries ``test.run = marker``."""
    plain: dict[str, Any] = json.loads(EXAMPLE_EVENT.read_text())
    marked = json.loads(json.dumps(plain))
    marked["data"].insert(
        3, {"destinationTable": "TransactionKeyValue", "key": "test.run", "value": marker or "m"}
    )
    return plain, marked


def _matches(expression: str, document: dict[str, Any]) -> bool:
    return any(True for _ in JsonPath.parse_str(expression).match(document))


# --------------------------------------------------------------------------- no stack needed


def test_arguments_and_their_defaults() -> None:
    args = cli.build_parser().parse_args(
        ["subscribe", "--notifications-url", "http://n:8070", "--user", "dispatcher"]
    )
    assert args.command == "subscribe"
    assert args.name == DEFAULT_NAME and args.user_header == "Http-Remote-User"
    assert args.target_url is None and args.require == []
    assert not (args.status or args.enable or args.delete)
    again = cli.build_parser().parse_args(
        [
            "subscribe",
            "--notifications-url=http://n:8070",
            "--user=u",
            "--user-header=X-Remote-User",
            "--require",
            "a=1",
            "--require",
            "b=x=y",
            "--status",
        ]
    )
    assert again.user_header == "X-Remote-User" and again.status
    assert parse_requirements(again.require) == {"a": "1", "b": "x=y"}


@pytest.mark.parametrize("item", ["novalue", "=v", "k="])
def test_malformed_requirement_is_refused(item: str) -> None:
    with pytest.raises(SubscriptionError, match="KEY=VALUE"):
        parse_requirements([item])


def test_actions_exclude_each_other_and_url_and_user_are_required(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["subscribe", "--notifications-url=u", "--user=x", "--status", "--enable"]
        )
    with pytest.raises(SystemExit):
        parser.parse_args(["subscribe", "--user=x"])
    with pytest.raises(SystemExit):
        parser.parse_args(["subscribe", "--notifications-url=http://n"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_subscribing_without_a_target_is_an_error_before_any_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPATCHER_AUTH", raising=False)
    code = cli.main(["subscribe", f"--notifications-url={CLOSED_PORT_URL}", "--user=dispatcher"])
    assert code == 2
    assert "--target-url" in capsys.readouterr().err


def test_unreachable_notifications_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["subscribe", f"--notifications-url={CLOSED_PORT_URL}", "--user=dispatcher", "--status"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot reach Notifications at {CLOSED_PORT_URL} (Connection refused)" in err


def test_client_refuses_bad_urls_and_an_empty_user() -> None:
    with pytest.raises(SubscriptionError, match="not http"):
        NotificationsClient("ftp://n", "u")
    with pytest.raises(SubscriptionError, match="--user"):
        NotificationsClient("http://n", "")


def test_printed_expression_is_the_routing_expression(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCHER_ACCEPTED_SOURCES", "https://meta.example/txn*")
    code = cli.main(["subscribe", "--notifications-url=http://n", "--user=u", "--print-expression"])
    printed = capsys.readouterr().out
    configured = Settings(accepted_sources=("https://meta.example/txn*",))
    assert code == 0
    assert printed.rstrip("\n") == subscription_expression(configured, strict=False).rstrip("\n")
    assert '"https://meta.example/txn"' in printed
    code = cli.main(
        ["subscribe", "--notifications-url=http://n", "--user=u", "--print-expression", "--strict"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.rstrip("\n") == subscription_expression(configured).rstrip("\n")


def test_default_subscription_is_broad_and_strict_is_the_route() -> None:
    assert expression_for(Settings(), {}) == subscription_expression(Settings(), strict=False)
    assert expression_for(Settings(), {}, strict=True) == subscription_expression(Settings())
    _, marked = _events("m")
    marked = edited_event(
        marked, renames={"proxymod.config_1.PROJECT.runtime": "proxymod.config_1.PROJECT.runtme"}
    )
    assert _matches(expression_for(Settings(), {"test.run": "m"}), marked)
    assert not _matches(expression_for(Settings(), {"test.run": "m"}, strict=True), marked)


def test_narrowed_expression_requires_the_key_value_too() -> None:
    marker = uuid.uuid4().hex
    plain, marked = _events(marker)
    expression = expression_for(Settings(), {"test.run": marker})
    assert expression_for(Settings(), {}, strict=True) == subscription_expression(Settings())
    assert _matches(subscription_expression(Settings()), plain)
    assert _matches(expression, marked)
    assert not _matches(expression, plain)
    assert not _matches(expression_for(Settings(), {"test.run": "other"}), marked)
    event = parse_http({"Content-Type": "application/json"}, json.dumps(marked).encode())
    assert match(event, Settings()) is not None  # the service still takes what it is sent


# --------------------------------------------------------------------------- the real Notifications


@pytest.fixture
def stack() -> dict[str, Any]:
    return find_stack()


@pytest.fixture
def client(stack: dict[str, Any]) -> NotificationsClient:
    return NotificationsClient(
        stack["notifications_url"], stack["network_id"], stack["notifications_user_header"]
    )


@pytest.fixture
def name(client: NotificationsClient) -> Iterator[str]:
    """A subscription name unique to this test; whatever carries it is deleted afterwards."""
    unique = f"test-subscribe-{uuid.uuid4().hex}"
    yield unique
    unsubscribe(client, unique)


def _options(stack: dict[str, Any], name: str) -> list[str]:
    return [
        "subscribe",
        f"--notifications-url={stack['notifications_url']}",
        f"--user={stack['network_id']}",
        f"--user-header={stack['notifications_user_header']}",
        f"--name={name}",
    ]


def _marker_expression(marker: str) -> str:
    """What ``subscribe`` registers by default (the broad expression), narrowed to this run."""
    return narrow_expression(
        subscription_expression(Settings(), strict=False), {"test.run": marker}
    )


@pytest.mark.integration
def test_a_user_without_subscriptions_is_not_an_error(stack: dict[str, Any]) -> None:
    outsider = NotificationsClient(
        stack["notifications_url"],
        f"nobody-{uuid.uuid4().hex}",
        stack["notifications_user_header"],
    )
    assert outsider.subscriptions() == []
    assert find_one(outsider, DEFAULT_NAME) is None


@pytest.mark.integration
def test_subscribe_twice_updates_in_place(
    stack: dict[str, Any], client: NotificationsClient, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = uuid.uuid4().hex
    monkeypatch.setenv("DISPATCHER_AUTH", "basic")
    monkeypatch.setenv("DISPATCHER_AUTH_USERNAME", "notifier")
    monkeypatch.setenv("DISPATCHER_AUTH_PASSWORD", "pw-1")
    first_target = f"{CLOSED_PORT_URL}/receive"
    options = [*_options(stack, name), f"--require=test.run={marker}"]
    assert cli.main([*options, f"--target-url={first_target}"]) == 0
    created = client.find(name)
    assert len(created) == 1
    assert created[0].target_url == first_target
    assert created[0].auth == basic_auth("notifier", "pw-1")
    assert created[0].jsonpath == _marker_expression(marker)
    assert created[0].enabled and created[0].user == stack["network_id"]

    monkeypatch.setenv("DISPATCHER_AUTH_PASSWORD", "pw-2")
    assert cli.main([*options, "--target-url=http://127.0.0.1:2/receive"]) == 0
    updated = client.find(name)
    assert [sub.uuid for sub in updated] == [created[0].uuid]
    assert updated[0].target_url == "http://127.0.0.1:2/receive"
    assert updated[0].auth == basic_auth("notifier", "pw-2")

    assert cli.main([*options, "--target-url=http://127.0.0.1:2/r", "--auth-token=tk"]) == 0
    assert client.get(created[0].uuid).auth == bearer_auth("tk")


@pytest.mark.integration
def test_status_and_delete_through_the_command(
    stack: dict[str, Any],
    client: NotificationsClient,
    name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = _options(stack, name)
    assert cli.main([*options, "--status"]) == EXIT_NOT_FOUND
    assert "has no subscription named" in capsys.readouterr().out
    made = subscribe(
        client,
        name,
        f"{CLOSED_PORT_URL}/r",
        _marker_expression(uuid.uuid4().hex),
        basic_auth("u", "hidden"),
    )
    assert made.action == "created"
    assert cli.main([*options, "--status"]) == 0
    out = capsys.readouterr().out
    assert f"({made.subscription.uuid})" in out and ": enabled" in out
    assert "hidden" not in out and "********" in out
    assert cli.main([*options, "--delete"]) == 0
    assert made.subscription.uuid in capsys.readouterr().out
    assert client.find(name) == []
    assert cli.main([*options, "--delete"]) == EXIT_NOT_FOUND


@pytest.mark.integration
def test_notifications_errors_are_explained(
    stack: dict[str, Any], client: NotificationsClient, name: str
) -> None:
    with pytest.raises(SubscriptionError, match="refused the expression"):
        client.create({"name": name, "jsonpath": "$[?(", "target_url": f"{CLOSED_PORT_URL}/r"})
    with pytest.raises(SubscriptionError, match="refused the subscription's fields"):
        client.create({"name": name, "jsonpath": "$", "target_url": 5})
    assert client.find(name) == []
    with pytest.raises(
        SubscriptionError, match=r"403 .*no such subscription for user 'dispatcher'"
    ):
        client.update(str(uuid.uuid4()), {"error": None})
    made = subscribe(client, name, f"{CLOSED_PORT_URL}/r", _marker_expression("x"), {})
    outsider = NotificationsClient(
        stack["notifications_url"], stack["outsider_network_id"], stack["notifications_user_header"]
    )
    with pytest.raises(SubscriptionError, match="another user's"):
        outsider.get(made.subscription.uuid)
    with pytest.raises(SubscriptionError, match="no subscription named"):
        enable(outsider, name)


def _upload_marked(stack: dict[str, Any], marker: str, folder: Path) -> int:
    """Upload one small file carrying ``test.run = marker``; the job (transaction) id."""
    from pacifica.uploader import Uploader
    from pacifica.uploader.bundler import Bundler
    from pacifica.uploader.metadata import MetaData, MetaObj

    metadata = MetaData(
        [
            MetaObj(destinationTable="Transactions.submitter", value=stack["submitter"]),
            MetaObj(destinationTable="Transactions.project", value=stack["project"]),
            MetaObj(destinationTable="Transactions.instrument", value=stack["instrument"]),
            MetaObj(destinationTable="TransactionKeyValue", key="test.run", value=marker),
        ]
    )
    source = folder / "note.txt"
    source.write_text(f"marker {marker}\n")
    bundle = folder / "bundle.tar"
    with source.open("rb") as handle, bundle.open("wb") as out:
        info = source.stat()
        file_data = [
            {
                "name": "data/note.txt",
                "size": info.st_size,
                "mtime": info.st_mtime,
                "fileobj": handle,
            }
        ]
        Bundler(metadata, file_data).stream(out)
    assert tarfile.is_tarfile(bundle)
    uploader = Uploader(upload_url=stack["upload_url"], status_url=stack["upload_status_url"])
    with bundle.open("rb") as stream:
        return int(uploader.upload(stream, content_length=bundle.stat().st_size))


@pytest.mark.integration
def test_a_disabled_subscription_is_shown_and_enabled_again(
    stack: dict[str, Any],
    client: NotificationsClient,
    name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Notifications really disables it (delivery to a closed port); --enable restores it."""
    marker = uuid.uuid4().hex
    only_ours = (
        '$[?($["eventType"] = "org.pacifica.metadata.ingest" and $["data"][*][?('
        f'@["destinationTable"] = "TransactionKeyValue" and @["value"] = "{marker}")])]'
    )
    auth = bearer_auth("kept-token")
    made = subscribe(client, name, f"{CLOSED_PORT_URL}/receive", only_ours, auth, {"k": "v"})
    _upload_marked(stack, marker, tmp_path)
    deadline = time.monotonic() + 120
    current = made.subscription
    while current.enabled and time.monotonic() < deadline:
        time.sleep(0.3)
        current = client.get(current.uuid)
    assert not current.enabled, "Notifications did not disable the subscription within 120 s"
    assert current.error and "refused" in current.error.lower()

    options = _options(stack, name)
    assert cli.main([*options, "--status"]) == EXIT_DISABLED
    shown = capsys.readouterr().out
    assert "DISABLED since" in shown and "Notifications recorded:" in shown
    assert cli.main([*options, "--enable"]) == 0
    assert ": enabled" in capsys.readouterr().out
    again = client.get(current.uuid)
    assert again.enabled and again.error is None
    assert again.auth == auth and again.extensions == {"k": "v"}
    assert again.jsonpath == only_ours
