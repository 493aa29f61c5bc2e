"""Fixtures of the fault tests: private services for the session, a dispatcher per test.

The private PostgreSQL, Redis and RabbitMQ start on first use, each on a loopback port that is
free at run time, with their files in one private temporary folder, and stop at the end of the
session; nothing here touches the machine's shared services, and any number of sessions run side
by side. ``DISPATCHER_FAULT_PORT_OFFSET=N`` pins the ports instead (5440, 6390, 5690/25690 plus
N), for someone who wants to find the servers. Each test gets a fresh database and an emptied
broker, and every worker or web process it started is stopped after it, whatever happened.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.queue import QUEUE_NAME

from .harness import Dispatcher, FaultData, Web, Worker
from .services import RABBITMQ_SBIN, PrivatePostgres, PrivateRabbitMQ, PrivateRedis

_counter = itertools.count(1)
#: Set: every private service's fixed port plus this offset; unset: free ports chosen at run time.
_OFFSET = os.environ.get("DISPATCHER_FAULT_PORT_OFFSET", "").strip()
PORT_OFFSET: int | None = int(_OFFSET) if _OFFSET else None


def pinned(base: int) -> int | None:
    """``base + DISPATCHER_FAULT_PORT_OFFSET`` when the offset is set, else None (a free port)."""
    return None if PORT_OFFSET is None else base + PORT_OFFSET


#: Every private service this session started (to restart one a failed test left down).
_started: list[PrivatePostgres | PrivateRedis | PrivateRabbitMQ] = []


def _needs(server: str, installed: bool, package: str) -> None:
    """Skip, naming what to install, when a server the suite runs privately is missing (in CI:
    fail, since CI's machine has them all)."""
    if installed:
        return
    message = f"the fault suite runs a private {server}: apt-get install {package}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def fault_root() -> Iterator[Path]:
    """A session folder outside pytest's private tmp (the postgres user must reach it)."""
    root = Path(tempfile.mkdtemp(prefix="dispatcher-fault-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(fault_root: Path) -> Iterator[PrivatePostgres]:
    """The private PostgreSQL cluster (running at the start of every test that uses it)."""
    _needs("PostgreSQL", any(Path("/usr/lib/postgresql").glob("*/bin/initdb")), "postgresql")
    server = PrivatePostgres(fault_root / "postgres", port=pinned(5440))
    server.start()
    _started.append(server)
    yield server
    server.stop("fast")


@pytest.fixture(scope="session")
def redis_server(fault_root: Path) -> Iterator[PrivateRedis]:
    """The private Redis (append-only file, fsync on every write)."""
    _needs("Redis", shutil.which("redis-server") is not None, "redis-server")
    server = PrivateRedis(fault_root / "redis", port=pinned(6390))
    server.start()
    _started.append(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq(fault_root: Path) -> Iterator[PrivateRabbitMQ]:
    """The private RabbitMQ node."""
    _needs("RabbitMQ", (RABBITMQ_SBIN / "rabbitmq-server").exists(), "rabbitmq-server")
    server = PrivateRabbitMQ(
        fault_root / "rabbitmq",
        port=pinned(5690),
        dist_port=pinned(25690),
    )
    server.start()
    _started.append(server)
    yield server
    server.stop()


@pytest.fixture
def fault_data(tmp_path: Path) -> FaultData:
    """A private copy of the example data, with the one-config fault model."""
    return FaultData(tmp_path / "data")


@pytest.fixture
def make_dispatcher(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PrivatePostgres, fault_data: FaultData
) -> Iterator[Callable[..., Dispatcher]]:
    """Builds the test's dispatcher on a fresh database and the chosen (emptied) broker."""
    made: list[Dispatcher] = []

    def build(broker: str = "rabbitmq", **timings: Any) -> Dispatcher:
        database = postgres.create_database(f"fault_{next(_counter)}")
        if broker == "rabbitmq":
            server: PrivateRabbitMQ = request.getfixturevalue("rabbitmq")
            server.reset(QUEUE_NAME)
            broker_url = server.url
        elif broker == "redis":
            redis_server: PrivateRedis = request.getfixturevalue("redis_server")
            redis_server.reset()
            broker_url = redis_server.url
        else:
            raise ValueError(f"unknown broker {broker!r}")
        dispatcher = Dispatcher(
            root=tmp_path / f"dispatcher-{len(made)}",
            database_url=database,
            broker_url=broker_url,
            data_dir=fault_data.root,
            **timings,
        )
        dispatcher.root.mkdir(parents=True)
        dispatcher.open_store()
        made.append(dispatcher)
        return dispatcher

    yield build
    store.close_database()


@pytest.fixture
def processes() -> Iterator[list[Worker | Web]]:
    """Workers and web servers a test started; all stopped after the test."""
    started: list[Worker | Web] = []
    yield started
    for process in reversed(started):
        process.stop()


@pytest.fixture(autouse=True)
def _restart_stopped_services() -> Iterator[None]:
    """A test that failed while a private service was down leaves it running for the next."""
    yield
    for server in _started:
        if isinstance(server, PrivatePostgres):
            if not server.running:
                server.start()
        elif server.process is None:
            server.start()
