"""Private PostgreSQL, Redis and RabbitMQ instances that a fault test may stop, crash and restart.

The machine's own services (PostgreSQL 5432, Redis 6379, RabbitMQ 5672) are shared with other
work and are never touched: each class here runs its own server on a loopback port of its own
(free at run time unless the caller names one), with its files in a temporary folder, and stops
only the processes it started. A port, once chosen, is kept across restarts (the dispatcher under
test holds the URL); a port taken before the first start is replaced by another free one.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg2  # type: ignore[import-untyped,unused-ignore]
import redis
from kombu.connection import Connection
from kombu.exceptions import OperationalError as KombuOperationalError

T = TypeVar("T")

RABBITMQ_SBIN = Path("/usr/lib/rabbitmq/bin")
STOP_TIMEOUT = 60.0


class ServiceError(RuntimeError):
    """A private service could not be started or stopped; carries the command and its output."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what
        self.detail = detail


def wait_until(
    predicate: Callable[[], T | None], timeout: float, what: str, every: float = 0.1
) -> T:
    """Poll ``predicate`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def free_port(low: int | None = None, high: int | None = None) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Without bounds the kernel picks one; with bounds, a random free one in ``[low, high]`` (for a
    server that derives further ports from it, such as RabbitMQ's CLI ports at +10000).
    """
    if low is None or high is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServiceError("free port", f"no free port in {low}-{high} after 200 tries")


class PortChoice:
    """A service's port: the one asked for (kept, a taken one fails), or a free one chosen now.

    A chosen port that someone else takes before the first start is swapped for another; after
    the first start it is kept, so a restarted server comes back where its clients expect it.
    """

    def __init__(self, asked: int | None, low: int | None = None, high: int | None = None) -> None:
        self.asked = asked
        self.low, self.high = low, high
        self.port = asked if asked is not None else free_port(low, high)
        self.started = False

    def before_start(self, who: str) -> int:
        """The port to start on: a fresh free one if ours was taken before the first start."""
        if port_is_open(self.port):
            if self.asked is not None or self.started:
                raise ServiceError(who, f"port {self.port} on 127.0.0.1 is already in use")
            self.port = free_port(self.low, self.high)
        self.started = True
        return self.port


def _run(
    command: list[str], what: str, timeout: float = STOP_TIMEOUT, env: dict[str, str] | None = None
) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if result.returncode != 0:
        raise ServiceError(what, f"{' '.join(command)} -> {result.returncode}: {result.stderr}")
    return result.stdout


def _stop_process(process: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the process group we started and reap it (bounded)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


class PrivateRedis:
    """A redis-server on its own port with an append-only file (``appendfsync always``)."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self._port = PortChoice(port)
        self.process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def port(self) -> int:
        """The server's port."""
        return self._port.port

    @property
    def url(self) -> str:
        """The broker URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client of this server (short timeouts)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self._port.before_start("private redis")
        command = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.root),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            "--logfile",
            str(self.root / "redis.log"),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_until(self._answers, 30, f"redis on port {self.port}")

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServiceError("private redis", f"exited with {self.process.returncode}")
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """A clean stop (SIGTERM: redis flushes its append-only file and exits)."""
        if self.process is not None:
            _stop_process(self.process, signal.SIGTERM)
            self.process = None

    def crash(self) -> None:
        """SIGKILL the server: only what reached the append-only file survives."""
        if self.process is not None:
            _stop_process(self.process, signal.SIGKILL)
            self.process = None

    def queue_length(self, queue: str) -> int:
        """How many messages wait in the kombu list ``queue``."""
        with self.client() as client:
            return int(client.llen(queue))

    def reset(self) -> None:
        """Forget every key (a fresh broker for the next test)."""
        with self.client() as client:
            client.flushall()


class PrivateRabbitMQ:
    """A RabbitMQ node of its own (name, ports, cookie, Mnesia and log folders)."""

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        dist_port: int | None = None,
        node: str | None = None,
    ) -> None:
        self.root = root
        self._port = PortChoice(port)
        # rabbitmqctl talks from ports dist_port + 10000 .. + 10010: keep those below 65536
        self._dist_port = PortChoice(dist_port, 20000, 29999)
        self._node_name = node
        self.process: subprocess.Popen[bytes] | None = None
        home = root / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text("DISPATCHERFAULTTESTCOOKIE")
            cookie.chmod(0o400)
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq-env.conf").write_text("")

    @property
    def port(self) -> int:
        """The AMQP port."""
        return self._port.port

    @property
    def dist_port(self) -> int:
        """The Erlang distribution port."""
        return self._dist_port.port

    @property
    def node(self) -> str:
        """The node name (unique per AMQP port unless named: nodes share the machine's epmd)."""
        return f"{self._node_name or f'dispfault{self.port}'}@localhost"

    @property
    def url(self) -> str:
        """The broker URL (default vhost, the guest user)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def environment(self) -> dict[str, str]:
        """The environment of the node and of ``rabbitmqctl`` talking to it."""
        env = dict(os.environ)
        env.update(
            HOME=str(self.root / "home"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.root / "node.pid"),
        )
        return env

    def ctl(self, *args: str, timeout: float = STOP_TIMEOUT) -> str:
        """Run ``rabbitmqctl -n <our node> ...`` and return its output."""
        command = [str(RABBITMQ_SBIN / "rabbitmqctl"), "-n", self.node, *args]
        return _run(command, "rabbitmqctl", timeout=timeout, env=self.environment())

    def start(self) -> None:
        """Start the node and wait until it accepts AMQP connections."""
        self._port.before_start("private rabbitmq")
        self._dist_port.before_start("private rabbitmq (distribution)")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(RABBITMQ_SBIN / "rabbitmq-server")],
                env=self.environment(),
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._answers, 120, f"rabbitmq node {self.node} on port {self.port}", 0.5)

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise ServiceError("private rabbitmq", f"exited with {self.process.returncode}: {log}")
        if not port_is_open(self.port):
            return False
        try:
            with Connection(self.url, connect_timeout=3) as connection:
                connection.ensure_connection(max_retries=1)
            return True
        except (KombuOperationalError, OSError):
            return False

    def stop(self) -> None:
        """A clean stop of the whole node (``rabbitmqctl stop``)."""
        if self.process is None:
            return
        with contextlib.suppress(ServiceError, subprocess.TimeoutExpired):
            self.ctl("stop")
        _stop_process(self.process, signal.SIGTERM)
        self.process = None

    def crash(self) -> None:
        """SIGKILL the Erlang VM and everything else the node started."""
        if self.process is not None:
            _stop_process(self.process, signal.SIGKILL)
            self.process = None
        wait_until(lambda: not port_is_open(self.port), 30, "the crashed node's port to close")

    def queue_length(self, queue: str) -> int:
        """Messages ready in ``queue`` (0 when it does not exist)."""
        with Connection(self.url, connect_timeout=5) as connection:
            channel = connection.channel()
            try:
                _, count, _ = channel.queue_declare(queue, passive=True)
            except Exception:
                return 0
            return int(count)

    def reset(self, queue: str) -> None:
        """Delete ``queue`` (a fresh broker for the next test)."""
        with Connection(self.url, connect_timeout=5) as connection:
            channel = connection.channel()
            try:
                channel.queue_delete(queue)
            except Exception:  # absent: nothing to delete
                return


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb as user postgres) on another port."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self._port = PortChoice(port)
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.running = False
        postgres = pwd.getpwnam("postgres")
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        for folder in (self.root, self.sockets):
            os.chown(folder, postgres.pw_uid, postgres.pw_gid)
        self.root.chmod(0o755)
        if not self.data.exists():
            self._as_postgres(
                [
                    _pg_binary("initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                "initdb",
            )

    @property
    def port(self) -> int:
        """The server's port."""
        return self._port.port

    @staticmethod
    def _as_postgres(command: list[str], what: str) -> str:
        return _run(["runuser", "-u", "postgres", "--", *command], what)

    def url(self, database: str) -> str:
        """The database URL of ``database`` in this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        self._port.before_start("private postgresql")
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=300"
        )
        self._as_postgres(
            [
                _pg_binary("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            "pg_ctl start",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: ``fast`` ends sessions cleanly, ``immediate`` is a crash."""
        if self.running:
            self._as_postgres(
                [_pg_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
                "pg_ctl stop",
            )
            self.running = False

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=10
        )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


def _pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        if not versions:
            raise ServiceError("private postgresql", f"{name} is not installed")
        found = str(versions[-1])
    return found
