#!/usr/bin/env python3
"""Run the real Pacifica services on 127.0.0.1 for the dispatcher's integration tests.

Subcommands: ``up`` (install, configure, start, seed, wait; idempotent), ``down [--wipe]``,
``status`` and ``env``. Standard library only; run it with the system ``python3``.
The services get their own virtualenv under the stack root, their own PostgreSQL databases
(``pacstack_*``) on the machine's PostgreSQL and their own Redis databases (10-12) on the
machine's Redis. See tests/integration/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT_ENV = "DISPATCHER_PACIFICA_STACK_ROOT"
POSTGRES_ENV = "DISPATCHER_PACIFICA_STACK_POSTGRES"
REDIS_ENV = "DISPATCHER_PACIFICA_STACK_REDIS"
DEFAULT_ROOT = "/tmp/dispatcher-pacifica-stack"
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432"
DEFAULT_REDIS = "redis://127.0.0.1:6379"
HOST = "127.0.0.1"
REQUIREMENT_FILES = ("requirements-services.txt", "requirements-pacifica.txt")
USER_HEADER = "Http-Remote-User"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


class StackError(Exception):
    """A step of the harness failed; the message names the service and where to look."""


@dataclass(frozen=True)
class Identity:
    """The metadata objects ``up`` creates so that one user may upload and subscribe."""

    submitter: int = 10
    network_id: str = "dispatcher"
    project: str = "1234a"
    instrument: int = 54
    outsider_id: int = 11
    outsider_network_id: str = "outsider"


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack."""

    name: str
    module: str  # python package under pacifica.
    port: int | None = None  # None for celery workers
    probe_path: str = "/"
    database: bool = False
    redis_db: int | None = None

    @property
    def url(self) -> str:
        """Base URL of an HTTP service."""
        return f"http://{HOST}:{self.port}"


def http_services() -> tuple[Service, ...]:
    """The HTTP services, in start order (the clients' default ports)."""
    return (
        Service("uniqueid", "uniqueid", 8051, database=True),
        Service("archiveinterface", "archiveinterface", 8080),
        Service("metadata", "metadata", 8121, probe_path="/keys?recursion_depth=0", database=True),
        Service("policy", "policy", 8181),
        Service("notifications", "notifications", 8070, database=True, redis_db=12),
        Service("ingest", "ingest", 8066, database=True, redis_db=10),
        Service("cartd", "cartd", 8081, database=True, redis_db=11),
    )


def worker_services() -> tuple[Service, ...]:
    """The celery workers (each shares its service's ini file and broker)."""
    return tuple(
        Service(f"{svc.name}-worker", svc.module, redis_db=svc.redis_db)
        for svc in http_services()
        if svc.redis_db is not None
    )


def all_services() -> tuple[Service, ...]:
    """Every process ``up`` starts, in start order."""
    return http_services() + worker_services()


def service(name: str) -> Service:
    """Look a service up by name."""
    for svc in all_services():
        if svc.name == name:
            return svc
    raise KeyError(name)


@dataclass(frozen=True)
class Postgres:
    """Where the machine's PostgreSQL is (trust auth assumed)."""

    host: str
    port: int
    user: str

    @classmethod
    def parse(cls, url: str) -> Postgres:
        """Read ``postgres://user@host:port``."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
            raise StackError(f"{POSTGRES_ENV} must look like {DEFAULT_POSTGRES}, got {url!r}")
        return cls(parts.hostname, parts.port or 5432, parts.username or "postgres")

    def peewee_url(self, database: str) -> str:
        """The services' ``[database] peewee_url``."""
        return f"postgres://{self.user}:@{self.host}:{self.port}/{database}"


@dataclass(frozen=True)
class Redis:
    """Where the machine's Redis is."""

    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Redis:
        """Read ``redis://host:port``."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            raise StackError(f"{REDIS_ENV} must look like {DEFAULT_REDIS}, got {url!r}")
        return cls(parts.hostname, parts.port or 6379)

    def url(self, db: int) -> str:
        """A broker URL for one database number."""
        return f"redis://{self.host}:{self.port}/{db}"


@dataclass(frozen=True)
class Stack:
    """Paths and peers of one stack; everything ``up`` writes lives under ``root``."""

    root: Path
    postgres: Postgres
    redis: Redis
    identity: Identity = field(default_factory=Identity)

    @property
    def venv(self) -> Path:
        """The services' own virtualenv."""
        return self.root / "venv"

    @property
    def bin(self) -> Path:
        """The venv's scripts."""
        return self.venv / "bin"

    @property
    def run_dir(self) -> Path:
        """Pid files and markers."""
        return self.root / "run"

    @property
    def logs(self) -> Path:
        """One log per process (cherrypy access/error logs beside them)."""
        return self.root / "logs"

    @property
    def conf(self) -> Path:
        """Rendered config files."""
        return self.root / "conf"

    @property
    def data(self) -> Path:
        """Archive, ingest and cart volumes."""
        return self.root / "data"

    @property
    def summary_path(self) -> Path:
        """Where ``up`` writes the endpoints JSON."""
        return self.root / "stack.json"

    def pid_file(self, svc: Service) -> Path:
        """Pid file of a process that ``up`` started."""
        return self.run_dir / f"{svc.name}.pid"

    def log_file(self, svc: Service) -> Path:
        """Stdout/stderr of a process."""
        return self.logs / f"{svc.name}.log"

    def ini(self, svc: Service) -> Path:
        """The service's own config.ini."""
        return self.conf / f"{svc.module}.ini"

    def cherrypy_conf(self, svc: Service) -> Path:
        """The service's cherrypy config."""
        return self.conf / f"{svc.module}.cherrypy.conf"

    def database(self, svc: Service) -> str:
        """The PostgreSQL database of a service."""
        return f"pacstack_{svc.module}"

    def databases(self) -> list[str]:
        """Every PostgreSQL database the stack owns."""
        return [self.database(svc) for svc in http_services() if svc.database]

    def redis_dbs(self) -> list[int]:
        """Every Redis database number the stack owns."""
        return sorted(svc.redis_db for svc in http_services() if svc.redis_db is not None)


def stack_from_args(args: argparse.Namespace) -> Stack:
    """Build the Stack from command-line options and their env-var defaults."""
    return Stack(
        root=Path(args.root).resolve(),
        postgres=Postgres.parse(args.postgres),
        redis=Redis.parse(args.redis),
    )


# ----------------------------------------------------------------------------- small helpers


class Clock:
    """Progress lines on stderr with the seconds since start."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.started = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since start."""
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        """Print one progress line."""
        print(f"[{self.verb} {self.elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


def http_get(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> int:
    """Status code of a GET (HTTP errors included); raises OSError when nothing answers."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def http_json(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Any:
    """Send JSON, return the decoded JSON answer (None for an empty body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:500]
        raise StackError(f"{method} {url} answered {err.code}: {detail}") from err
    return json.loads(raw) if raw.strip() else None


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def redis_command(redis: Redis, *words: str) -> bytes:
    """Send one command to Redis in RESP form and return the raw reply line."""
    payload = f"*{len(words)}\r\n".encode()
    for word in words:
        encoded = word.encode()
        payload += b"$%d\r\n%s\r\n" % (len(encoded), encoded)
    with socket.create_connection((redis.host, redis.port), timeout=5.0) as conn:
        conn.sendall(payload)
        reply = conn.makefile("rb").readline()
    if reply.startswith(b"-"):
        raise StackError(f"redis {' '.join(words)} failed: {reply.decode().strip()}")
    return reply


def psql(stack: Stack, *statements: str) -> str:
    """Run SQL statements (each on its own, outside a transaction) with psql; return output."""
    pg = stack.postgres
    command = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    command += ["-h", pg.host, "-p", str(pg.port), "-U", pg.user, "-d", "postgres"]
    for sql in statements:
        command += ["-c", sql]
    if shutil.which("psql") is None:
        raise StackError("the psql client is missing (Debian package postgresql-client)")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(
            f"psql {statements!r} failed on {pg.host}:{pg.port}: {done.stderr.strip()}"
        )
    return done.stdout.strip()


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def is_ours(stack: Stack, pid: int) -> bool:
    """True when pid is alive and runs from the stack's venv (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(stack.venv).encode() in cmdline


def running_pid(stack: Stack, svc: Service) -> int | None:
    """Pid of the service if ``up`` started it and it is still alive."""
    pid = read_pid(stack.pid_file(svc))
    if pid is not None and is_ours(stack, pid):
        return pid
    return None


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


# ----------------------------------------------------------------------------- summary


def summary(stack: Stack) -> dict[str, Any]:
    """The endpoints and identities the tests need (written to stack.json by ``up``)."""
    urls = {svc.name: svc.url for svc in http_services()}
    ident = stack.identity
    return {
        "root": str(stack.root),
        "logs": str(stack.logs),
        "services": urls,
        "metadata_url": urls["metadata"],
        "policy_url": urls["policy"],
        "ingest_url": urls["ingest"],
        "upload_url": urls["ingest"] + "/upload",
        "upload_status_url": urls["ingest"] + "/get_state",
        "upload_policy_url": urls["policy"] + "/uploader",
        "upload_validation_url": urls["policy"] + "/ingest",
        "cartd_url": urls["cartd"],
        "download_policy_url": urls["policy"] + "/status/transactions/by_id",
        "notifications_url": urls["notifications"],
        "notifications_user_header": USER_HEADER,
        "archiveinterface_url": urls["archiveinterface"],
        "uniqueid_url": urls["uniqueid"],
        "network_id": ident.network_id,
        "submitter": ident.submitter,
        "project": ident.project,
        "instrument": ident.instrument,
        "outsider_network_id": ident.outsider_network_id,
        "outsider_id": ident.outsider_id,
        "postgres": {
            "host": stack.postgres.host,
            "port": stack.postgres.port,
            "databases": stack.databases(),
        },
        "redis": {
            "host": stack.redis.host,
            "port": stack.redis.port,
            "databases": {svc.name: svc.redis_db for svc in worker_services()},
        },
    }


def env_lines(stack: Stack) -> list[str]:
    """``export`` lines: pacifica-cli's variable names plus the ones our tests read."""
    info = summary(stack)
    pairs = {
        "UPLOAD_URL": info["upload_url"],
        "UPLOAD_STATUS_URL": info["upload_status_url"],
        "UPLOAD_POLICY_URL": info["upload_policy_url"],
        "UPLOAD_VALIDATION_URL": info["upload_validation_url"],
        "DOWNLOAD_URL": info["cartd_url"],
        "DOWNLOAD_POLICY_URL": info["download_policy_url"],
        "PACIFICA_NOTIFICATIONS_URL": info["notifications_url"],
        "METADATA_URL": info["metadata_url"],
        "PACIFICA_STACK_NETWORK_ID": info["network_id"],
        "PACIFICA_STACK_JSON": str(stack.summary_path),
    }
    return [f"export {key}={value}" for key, value in pairs.items()]


# ----------------------------------------------------------------------------- install


def requirements_digest() -> str:
    """Hash of our pinned requirement files and the interpreter version."""
    digest = hashlib.sha256(sys.version.encode())
    for name in REQUIREMENT_FILES:
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()[:16]


def install(stack: Stack, clock: Clock) -> None:
    """Create the venv and install the pinned set, unless it is already there."""
    marker = stack.venv / ".dispatcher-pacifica-stack"
    wanted = requirements_digest()
    python = stack.bin / "python"
    if python.exists() and marker.exists() and marker.read_text().strip() == wanted:
        return
    log = stack.logs / "pip.log"
    clock.say(f"installing the Pacifica services into {stack.venv} (log {log})")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(stack.venv)], check=True)
    # Both files together are the full closure, pinned: --no-deps skips pip's resolver (and
    # pacifica-metadata's psycopg2 requirement, which psycopg2-binary fills).
    files = [arg for name in REQUIREMENT_FILES for arg in ("-r", str(HERE / name))]
    pip = [str(python), "-m", "pip"]
    with log.open("a") as out:
        command = [*pip, "install", "--no-input", "--no-deps", *files]
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise StackError(f"pip install failed; see {log}")
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, check=False)
    problems = [
        line
        for line in check.stdout.splitlines()
        if line.strip() and "requires psycopg2, which is not installed" not in line
    ]
    if problems:
        raise StackError("pinned set incomplete (pip check): " + "; ".join(problems))
    marker.write_text(wanted + "\n")


# ----------------------------------------------------------------------------- configuration


def ini_text(sections: Mapping[str, Mapping[str, str]]) -> str:
    """Render an ini file."""
    out: list[str] = []
    for section, values in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {value}" for key, value in values.items())
        out.append("")
    return "\n".join(out)


def service_ini(stack: Stack, svc: Service) -> dict[str, dict[str, str]]:
    """The config.ini sections of one service (every URL on loopback)."""
    url = {s.name: s.url for s in http_services()}
    sections: dict[str, dict[str, str]] = {}
    if svc.database:
        sections["database"] = {
            "peewee_url": stack.postgres.peewee_url(stack.database(svc)),
            "connect_attempts": "20",
            "connect_wait": "2",
        }
    if svc.redis_db is not None:
        sections["celery"] = {"broker_url": stack.redis.url(svc.redis_db), "backend_url": "rpc://"}
    if svc.module == "archiveinterface":
        sections["posix"] = {"use_id2filename": "false"}
    elif svc.module == "metadata":
        sections["notifications"] = {"disabled": "False", "url": url["notifications"] + "/receive"}
    elif svc.module == "policy":
        sections["metadata"] = {
            "endpoint_url": url["metadata"],
            "status_url": url["metadata"] + "/groups",
        }
    elif svc.module == "notifications":
        sections["notifications"] = {"user_header": USER_HEADER, "policy_url": url["policy"]}
    elif svc.module == "ingest":
        sections["ingest"] = {"volume_path": str(stack.data / "ingest") + "/"}
        sections["uniqueid"] = {"url": url["uniqueid"]}
        sections["policy"] = {"ingest_url": url["policy"] + "/ingest"}
        sections["archiveinterface"] = {"url": url["archiveinterface"]}
        sections["metadata"] = {"ingest_url": url["metadata"] + "/ingest"}
    elif svc.module == "cartd":
        sections["cartd"] = {"volume_path": str(stack.data / "cartd") + "/"}
        sections["archiveinterface"] = {"url": url["archiveinterface"] + "/"}
    return sections


def cherrypy_text(stack: Stack, svc: Service) -> str:
    """The cherrypy config of one service.

    cherrypy.quickstart applies this file after the command line's -a/-p, so the bind
    address and port must be set here as well.
    """
    quote = json.dumps
    return "\n".join(
        [
            "[global]",
            "log.screen: False",
            f"log.access_file: {quote(str(stack.logs / (svc.name + '.access.log')))}",
            f"log.error_file: {quote(str(stack.logs / (svc.name + '.error.log')))}",
            f"server.socket_host: {quote(HOST)}",
            f"server.socket_port: {svc.port}",
            "server.max_request_body_size: 0",
            "server.socket_timeout: 60",
            "response.timeout: 3600",
            "",
            "[/]",
            "request.dispatch: cherrypy.dispatch.MethodDispatcher()",
            "tools.response_headers.on: True",
            "tools.response_headers.headers: [('Content-Type', 'application/json')]",
            "",
        ]
    )


def write_configs(stack: Stack) -> None:
    """Render every ini and cherrypy config under <root>/conf."""
    stack.conf.mkdir(parents=True, exist_ok=True)
    for svc in http_services():
        stack.ini(svc).write_text(ini_text(service_ini(stack, svc)))
        stack.cherrypy_conf(svc).write_text(cherrypy_text(stack, svc))


def service_env(stack: Stack) -> dict[str, str]:
    """A clean environment for the services.

    The services read PEEWEE_URL, BROKER_URL, METADATA_URL and the like as defaults, so the
    caller's environment is not passed on; each finds its files through <SVC>_CONFIG.
    """
    env = {
        "PATH": f"{stack.bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(stack.root / "home"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    for svc in http_services():
        prefix = svc.module.upper()
        env[f"{prefix}_CONFIG"] = str(stack.ini(svc))
        env[f"{prefix}_CPCONFIG"] = str(stack.cherrypy_conf(svc))
    return env


def command_line(stack: Stack, svc: Service) -> list[str]:
    """The argv that starts one process (each server's flag names differ)."""
    if svc.port is None:
        base = svc.name.removesuffix("-worker")
        return [
            str(stack.bin / "celery"),
            "-A",
            f"pacifica.{svc.module}.tasks",
            "worker",
            "--loglevel=info",
            "--concurrency=1",  # the posix archive interface breaks on parallel reads
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"pacstack-{base}@%h",
        ]
    ini, cpconf = str(stack.ini(svc)), str(stack.cherrypy_conf(svc))
    program = str(stack.bin / f"pacifica-{svc.module}")
    bind = ["-a", HOST, "-p", str(svc.port)]
    if svc.module == "policy":  # its -c is the cherrypy file; the ini comes from POLICY_CONFIG
        return [program, "-c", cpconf, *bind]
    if svc.module == "archiveinterface":
        archive = str(stack.data / "archive")
        cp = ["--cherrypy-config", cpconf, "-t", "posix", "--prefix", archive]
        return [program, "-c", ini, *cp, *bind]
    cp_flag = "--cp-config" if svc.module == "ingest" else "--cpconfig"
    return [program, "-c", ini, cp_flag, cpconf, *bind]


# ----------------------------------------------------------------------------- backing stores


def check_backends(stack: Stack) -> None:
    """Fail early, with the fix, when PostgreSQL or Redis is not there."""
    pg, rd = stack.postgres, stack.redis
    if not port_open(pg.host, pg.port):
        raise StackError(
            f"PostgreSQL does not answer on {pg.host}:{pg.port}; start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' "
            f"or point {POSTGRES_ENV} at another server"
        )
    try:
        redis_command(rd, "PING")
    except OSError as err:
        raise StackError(
            f"Redis does not answer on {rd.host}:{rd.port} ({err}); start it, or point "
            f"{REDIS_ENV} at another server"
        ) from err


def create_databases(stack: Stack) -> list[str]:
    """Create the stack's databases that are missing; return the ones created."""
    existing = set(psql(stack, "select datname from pg_database").split())
    created = []
    for name in stack.databases():
        if name not in existing:
            psql(stack, f'create database "{name}"')
            created.append(name)
    return created


def sync_schemas(stack: Stack, created: Sequence[str], clock: Clock) -> None:
    """Run each service's ``dbsync`` once per database (in parallel)."""
    env = service_env(stack)
    running: list[tuple[Service, subprocess.Popen[bytes], Path]] = []
    for svc in http_services():
        if not svc.database:
            continue
        marker = stack.run_dir / f"dbsync.{svc.module}.done"
        if stack.database(svc) in created:
            marker.unlink(missing_ok=True)
        if marker.exists():
            continue
        log = stack.logs / f"dbsync.{svc.module}.log"
        program = str(stack.bin / f"pacifica-{svc.module}-cmd")
        with log.open("w") as out:
            # the ini comes from <SVC>_CONFIG in env: metadata's -cmd has no -c option
            proc = subprocess.Popen(
                [program, "dbsync"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=stack.root,
            )
        running.append((svc, proc, log))
    if running:
        clock.say("creating schemas: " + ", ".join(svc.module for svc, _, _ in running))
    failed = []
    for svc, proc, log in running:
        if proc.wait(timeout=300) != 0:
            failed.append(f"{svc.module} (log {log}):\n{log_tail(log)}")
        else:
            (stack.run_dir / f"dbsync.{svc.module}.done").write_text("ok\n")
    if failed:
        raise StackError("dbsync failed for " + "\n".join(failed))


# ----------------------------------------------------------------------------- processes


def check_ports_free(stack: Stack) -> None:
    """Fail before installing anything when a port we need is held by someone else."""
    for svc in http_services():
        if running_pid(stack, svc) is None and port_open(HOST, svc.port or 0):
            raise StackError(
                f"port {svc.port} for {svc.name} is taken by a process this harness did not "
                f"start (no live pid in {stack.pid_file(svc)}); stop that process first"
            )


def start(
    stack: Stack, svc: Service, env: Mapping[str, str], clock: Clock
) -> subprocess.Popen[bytes] | None:
    """Start one process in its own session unless it runs already; the process if started."""
    if running_pid(stack, svc) is not None:
        return None
    log = stack.log_file(svc)
    with log.open("w") as out:
        proc = subprocess.Popen(
            command_line(stack, svc),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=stack.root,
            start_new_session=True,
        )
    stack.pid_file(svc).write_text(f"{proc.pid}\n")
    clock.say(f"started {svc.name} (pid {proc.pid}, log {log})")
    return proc


def answers(svc: Service, timeout: float = 3.0) -> bool:
    """True when an HTTP service answers its probe with a non-5xx status."""
    try:
        return http_get(svc.url + svc.probe_path, timeout=timeout) < 500
    except OSError:
        return False


def worker_ready(stack: Stack, svc: Service) -> bool:
    """True when the celery worker has logged that it is ready."""
    try:
        return " ready." in stack.log_file(svc).read_text(errors="replace")
    except OSError:
        return False


def wait_ready(
    stack: Stack,
    services: Sequence[Service],
    clock: Clock,
    started: Mapping[str, subprocess.Popen[bytes]],
) -> None:
    """Wait, bounded, until every service answers; name the culprit and its log otherwise.

    A process this ``up`` ``started`` has exited when it says so: its ``/proc`` command line
    (what :func:`running_pid` reads) can be empty for a moment while the kernel still sets
    up the program it just executed, so under load a starting worker looked gone.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = list(services)
    while pending:
        for svc in list(pending):
            proc = started.get(svc.name)
            if (proc.poll() is not None) if proc else running_pid(stack, svc) is None:
                log = stack.log_file(svc)
                raise StackError(f"{svc.name} exited; log {log}:\n{log_tail(log)}")
            ready = answers(svc) if svc.port is not None else worker_ready(stack, svc)
            if ready:
                pending.remove(svc)
        if pending and time.monotonic() > deadline:
            names = "\n".join(
                f"{svc.name}, log {stack.log_file(svc)}:\n{log_tail(stack.log_file(svc), 5)}"
                for svc in pending
            )
            raise StackError(f"not ready after {START_TIMEOUT_S:.0f} s: {names}")
        if pending:
            time.sleep(0.3)
    clock.say("all services answer")


def stop_all(stack: Stack, services: Sequence[Service], clock: Clock) -> None:
    """Stop the process groups that ``up`` started: SIGTERM to all, then wait, then SIGKILL.

    Each process was started with start_new_session, so its pid is its process group id
    and the signal reaches its children (celery's pool) and nothing else.
    """
    stopping: list[tuple[Service, int]] = []
    for svc in services:
        pid = read_pid(stack.pid_file(svc))
        if pid is None:
            continue
        if not is_ours(stack, pid):
            stack.pid_file(svc).unlink(missing_ok=True)
            clock.say(f"{svc.name}: not running (stale pid file removed)")
            continue
        os.killpg(pid, signal.SIGTERM)
        stopping.append((svc, pid))
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and any(group_alive(pid) for _, pid in stopping):
        time.sleep(0.2)
    for svc, pid in stopping:
        verb = "stopped"
        if group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
            verb = f"killed after {STOP_TIMEOUT_S:.0f} s (ignored SIGTERM)"
        stack.pid_file(svc).unlink(missing_ok=True)
        clock.say(f"{svc.name}: {verb} (pid {pid})")


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process of the group remains."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "(comm) ": state ppid pgrp ...
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# ----------------------------------------------------------------------------- seeding


def seed_metadata(stack: Stack, clock: Clock) -> None:
    """Create the user, project, instrument and relations that allow upload and subscribe.

    The user is a plain member (not an admin): policy then checks the real relations.
    Also advances uniqueid's counters, once, so new transaction and file ids start at 1001
    and stay clear of the small ids used for users, instruments and hand-made fixtures.
    """
    ident = stack.identity
    meta = service("metadata").url
    if http_json("GET", f"{meta}/users?_id={ident.submitter}&recursion_depth=0"):
        return
    clock.say(
        f"seeding metadata: user {ident.submitter} ({ident.network_id}), "
        f"project {ident.project}, instrument {ident.instrument}"
    )
    uniqueid = service("uniqueid").url
    for mode in ("upload_job", "file"):
        http_json("GET", f"{uniqueid}/getid?range=1000&mode={mode}")
    users = [
        {
            "_id": ident.submitter,
            "network_id": ident.network_id,
            "first_name": "Dispatcher",
            "last_name": "Integration",
            "email_address": f"{ident.network_id}@example.com",
        },
        {
            "_id": ident.outsider_id,
            "network_id": ident.outsider_network_id,
            "first_name": "No",
            "last_name": "Rights",
            "email_address": "outsider@example.com",
        },
    ]
    objects: list[tuple[str, list[dict[str, Any]]]] = [
        ("users", users),
        (
            "projects",
            [
                {
                    "_id": ident.project,
                    "title": "Dispatcher integration project",
                    "short_name": "dispatcher",
                    "project_type": "test",
                    "accepted_date": "2020-01-01",
                    "actual_start_date": "2020-01-01",
                }
            ],
        ),
        (
            "instruments",
            [
                {
                    "_id": ident.instrument,
                    "name": "proxymod runner",
                    "display_name": "Dispatcher test instrument",
                    "name_short": "dispatch",
                    "active": True,
                }
            ],
        ),
        (
            "project_user",
            [{"user": ident.submitter, "project": ident.project, "relationship_name": "member_of"}],
        ),
        (
            "project_instrument",
            [
                {
                    "project": ident.project,
                    "instrument": ident.instrument,
                    "relationship_name": "upload_required",
                }
            ],
        ),
        (
            "instrument_user",
            [
                {
                    "user": ident.submitter,
                    "instrument": ident.instrument,
                    "relationship_name": "custodian",
                }
            ],
        ),
    ]
    for kind, rows in objects:
        http_json("PUT", f"{meta}/{kind}", rows)


def check_policy(stack: Stack) -> None:
    """Ask policy whether the seeded user may upload; fail loudly if not."""
    ident = stack.identity
    body = [
        {"destinationTable": "Transactions.submitter", "value": ident.submitter},
        {"destinationTable": "Transactions.project", "value": ident.project},
        {"destinationTable": "Transactions.instrument", "value": ident.instrument},
    ]
    answer = http_json("POST", service("policy").url + "/ingest", body)
    if answer != {"status": "success"}:
        raise StackError(f"policy refuses the seeded user: {answer!r}")


# ----------------------------------------------------------------------------- subcommands


def cmd_up(stack: Stack) -> int:
    """Install, configure, start, seed and wait; print and save the endpoints JSON."""
    clock = Clock("up")
    for folder in (stack.run_dir, stack.logs, stack.conf, stack.root / "home"):
        folder.mkdir(parents=True, exist_ok=True)
    for sub in ("ingest", "cartd", "archive"):
        (stack.data / sub).mkdir(parents=True, exist_ok=True)
    everything = all_services()
    if all(running_pid(stack, s) is not None for s in everything) and all(
        answers(s) for s in http_services()
    ):
        clock.say("already running")
    else:
        check_backends(stack)
        check_ports_free(stack)
        install(stack, clock)
        write_configs(stack)
        created = create_databases(stack)
        if created:
            clock.say("created databases " + ", ".join(created))
        sync_schemas(stack, created, clock)
        env = service_env(stack)
        started = {svc.name: proc for svc in everything if (proc := start(stack, svc, env, clock))}
        wait_ready(stack, everything, clock, started)
    seed_metadata(stack, clock)
    check_policy(stack)
    info = summary(stack)
    text = json.dumps(info, indent=2)
    stack.summary_path.write_text(text + "\n")
    clock.say(f"up (root {stack.root}, endpoints in {stack.summary_path})")
    print(text)
    return 0


def cmd_down(stack: Stack, wipe: bool) -> int:
    """Stop what ``up`` started; with wipe, also drop the databases and delete the data."""
    clock = Clock("down")
    stop_all(stack, all_services(), clock)
    if wipe:
        check_backends(stack)
        psql(stack, *(f'drop database if exists "{name}"' for name in stack.databases()))
        for db in stack.redis_dbs():
            flush_redis_db(stack.redis, db)
        for sub in ("data", "run", "logs", "conf", "home"):
            shutil.rmtree(stack.root / sub, ignore_errors=True)
        stack.summary_path.unlink(missing_ok=True)
        clock.say(
            f"wiped databases {', '.join(stack.databases())}, redis dbs "
            f"{', '.join(map(str, stack.redis_dbs()))} and {stack.root} (venv kept)"
        )
    clock.say("down")
    return 0


def flush_redis_db(redis: Redis, db: int) -> None:
    """FLUSHDB on one database number (one connection: SELECT then FLUSHDB)."""
    payload = b""
    for words in (("SELECT", str(db)), ("FLUSHDB",)):
        payload += f"*{len(words)}\r\n".encode()
        for word in words:
            payload += f"${len(word)}\r\n{word}\r\n".encode()
    with socket.create_connection((redis.host, redis.port), timeout=5.0) as conn:
        conn.sendall(payload)
        reader = conn.makefile("rb")
        replies = [reader.readline(), reader.readline()]
    if any(reply.startswith(b"-") for reply in replies):
        raise StackError(f"redis FLUSHDB on db {db} failed: {replies!r}")


def status_rows(stack: Stack) -> Iterator[tuple[Service, int | None, bool]]:
    """(service, pid if ours and alive, answers/ready) for every process."""
    for svc in all_services():
        pid = running_pid(stack, svc)
        ready = answers(svc) if svc.port is not None else worker_ready(stack, svc)
        yield svc, pid, ready and (pid is not None or svc.port is not None)


def cmd_status(stack: Stack, as_json: bool) -> int:
    """Print which services answer; exit 0 only when all do."""
    rows = list(status_rows(stack))
    if as_json:
        report = {
            svc.name: {"pid": pid, "ok": ok, "url": svc.url if svc.port else None}
            for svc, pid, ok in rows
        }
        print(json.dumps(report, indent=2))
    else:
        for svc, pid, ok in rows:
            where = svc.url if svc.port is not None else "celery"
            owner = f"pid {pid}" if pid is not None else "not started here"
            print(f"{svc.name:22} {'up' if ok else 'DOWN':5} {where:24} {owner}")
    return 0 if all(ok for _, _, ok in rows) else 3


def cmd_env(stack: Stack) -> int:
    """Print ``export`` lines for the shell (``eval "$(... env)"``)."""
    print("\n".join(env_lines(stack)))
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument(
        "--root",
        default=os.environ.get(ROOT_ENV, DEFAULT_ROOT),
        help=f"venv, data, logs, pid files (env {ROOT_ENV}; default {DEFAULT_ROOT})",
    )
    cli.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES),
        help=f"PostgreSQL with trust auth (env {POSTGRES_ENV}; default {DEFAULT_POSTGRES})",
    )
    cli.add_argument(
        "--redis",
        default=os.environ.get(REDIS_ENV, DEFAULT_REDIS),
        help=f"Redis server (env {REDIS_ENV}; default {DEFAULT_REDIS})",
    )
    sub = cli.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="install if needed, start, seed; print the endpoints JSON")
    down = sub.add_parser("down", help="stop what up started")
    down.add_argument("--wipe", action="store_true", help="also drop databases and data")
    status = sub.add_parser("status", help="which services answer (exit 3 if any does not)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("env", help="print export lines (pacifica-cli names + ours)")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parser().parse_args(argv)
    try:
        stack = stack_from_args(args)
        if args.command == "up":
            return cmd_up(stack)
        if args.command == "down":
            return cmd_down(stack, args.wipe)
        if args.command == "status":
            return cmd_status(stack, args.json)
        return cmd_env(stack)
    except StackError as err:
        print(f"pacifica_stack: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
