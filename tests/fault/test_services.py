"""The private services take ports nobody else holds, so two sessions run side by side."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .services import PortChoice, PrivateRedis, ServiceError, port_is_open

pytestmark = pytest.mark.fault


def test_two_private_redis_servers_run_side_by_side(tmp_path: Path) -> None:
    first, second = PrivateRedis(tmp_path / "a"), PrivateRedis(tmp_path / "b")
    try:
        first.start()
        second.start()
        assert first.port != second.port
        with first.client() as client:
            client.set("who", "first")
        with second.client() as client:
            assert client.get("who") is None
    finally:
        first.stop()
        second.stop()
    assert not port_is_open(first.port) and not port_is_open(second.port)


def test_a_chosen_port_taken_before_the_first_start_is_replaced(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "r")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", server.port))
    squatter.listen()
    taken = server.port
    try:
        server.start()
        assert server.port != taken
        assert server.client().ping()
    finally:
        server.stop()
        squatter.close()


def test_an_asked_port_that_is_taken_fails_at_once_naming_it() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        choice = PortChoice(port)
        with pytest.raises(ServiceError, match=f"port {port} .* already in use"):
            choice.before_start("private redis")


def test_a_started_port_is_kept_for_the_restart() -> None:
    choice = PortChoice(None)
    port = choice.before_start("x")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ServiceError, match="already in use"):
            choice.before_start("x")
    assert choice.before_start("x") == port


def test_bounded_free_ports_stay_in_their_range() -> None:
    choice = PortChoice(None, 20000, 29999)
    assert 20000 <= choice.port <= 29999
