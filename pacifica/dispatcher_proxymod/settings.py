"""Every setting of the dispatcher, read once, in one place.

Values come from the environment, then from the INI file named by ``DISPATCHER_CONFIG``
(section ``[dispatcher]``, the same names in lower case), then from the defaults below.
Nothing here is read at import time: call :func:`load_settings`.

Pacifica endpoints use pacifica-cli's own names (``UPLOAD_URL``, ``DOWNLOAD_URL``, ...) and
its config file, so one configuration serves both tools; see :class:`PacificaSettings`.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import SettingsError

#: Name of the environment variable that points at our optional INI file.
CONFIG_FILE_VARIABLE = "DISPATCHER_CONFIG"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

SANDBOX_MODES = ("auto", "bwrap", "process")
TRANSFER_KINDS = ("pacifica", "local")
KEEP_WORK_MODES = ("never", "on-failure", "always")
AUTH_MODES = ("none", "basic", "bearer")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
#: The Celery queue of a deployment that does not name its own.
DEFAULT_QUEUE = "pacifica.dispatcher_proxymod"


class _Source:
    """Looks a name up in the environment, then the config file."""

    def __init__(self, environ: Mapping[str, str], file_values: Mapping[str, str]) -> None:
        self.environ = environ
        self.file_values = file_values

    def raw(self, name: str) -> str | None:
        if name in self.environ:
            return self.environ[name]
        return self.file_values.get(name.lower())

    def text(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None or value == "" else value

    def optional(self, name: str) -> str | None:
        value = self.raw(name)
        return value if value else None

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        return int(self._bounded(name, default, minimum, int, "an integer"))

    def number(self, name: str, default: float, minimum: float = 0.0) -> float:
        return float(self._bounded(name, default, minimum, float, "a number"))

    def _bounded(
        self,
        name: str,
        default: float,
        minimum: float,
        convert: Callable[[str], float],
        what: str,
    ) -> float:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return default
        try:
            number = convert(value.strip())
        except ValueError:
            raise SettingsError(name, f"{value!r} is not {what}") from None
        if number < minimum:
            raise SettingsError(name, f"{number} is below the minimum {minimum}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(name, f"{value!r} is not one of true/false/1/0/yes/no/on/off")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).strip().lower()
        if value not in choices:
            raise SettingsError(name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def words(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class ModelLimits:
    """Resource limits for one model process."""

    timeout_seconds: float = 600.0
    memory_mb: int = 1024
    cpu_seconds: int = 600
    file_size_mb: int = 1024
    open_files: int = 256
    processes: int = 64
    tmp_mb: int = 64  # the sandbox's /tmp: part of memory_mb, not on top of it

    @property
    def address_space_mb(self) -> int:
        """The address-space limit: the memory limit less what ``/tmp`` may hold."""
        return self.memory_mb - self.tmp_mb


@dataclass(frozen=True)
class PacificaSettings:
    """Pacifica endpoints and credentials, named as pacifica-cli names them."""

    upload_url: str = "http://127.0.0.1:8066/upload"
    upload_status_url: str = "http://127.0.0.1:8066/get_state"
    upload_policy_url: str = "http://127.0.0.1:8181/uploader"
    upload_validation_url: str = "http://127.0.0.1:8181/ingest"
    download_url: str = "http://127.0.0.1:8081"
    download_policy_url: str = "http://127.0.0.1:8181/status/transactions/by_id"
    auth_type: str = "None"
    auth_username: str | None = None
    auth_password: str | None = None
    verify: bool = True
    ingest_timeout_seconds: float = 180.0
    cart_timeout_seconds: float = 120.0
    request_timeout_seconds: float = 60.0

    def requests_auth(self) -> dict[str, Any]:
        """The ``auth`` keyword the Pacifica client libraries pass to requests."""
        if self.auth_type.lower() == "basic" and self.auth_username is not None:
            return {"auth": (self.auth_username, self.auth_password or "")}
        return {}


@dataclass(frozen=True)
class HttpSettings:
    """Limits of the embedded HTTP server (see server.py and README "HTTP limits")."""

    threads: int = 16
    connection_limit: int = 1000
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    request_timeout_seconds: float = 30.0
    idle_timeout_seconds: float = 30.0
    shutdown_seconds: float = 30.0


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one dispatcher process."""

    database_url: str = "sqlite:///dispatcher.sqlite3"
    broker_url: str = "filesystem://"
    backend_url: str | None = None
    state_dir: Path = Path("dispatcher-state")
    work_dir: Path = Path("dispatcher-state/work")
    keep_work: str = "on-failure"
    transfer: str = "pacifica"
    data_dir: Path | None = None
    output_dir: Path | None = None
    sandbox: str = "auto"
    sandbox_ro_paths: tuple[str, ...] = ()
    limits: ModelLimits = field(default_factory=ModelLimits)
    max_body_bytes: int = 4 * 1024 * 1024
    max_configs: int = 100
    max_files: int = 10_000
    max_output_mb: int = 4096  # per file the larger of allocated (st_blocks) and apparent size
    max_output_files: int = 10_000
    auth: str = "none"
    auth_username: str | None = None
    auth_password: str | None = None
    auth_token: str | None = None
    accepted_sources: tuple[str, ...] = (
        "/pacifica/metadata/ingest",
        "http://metadata.pacifica.org/transactions?_id=",
    )
    heartbeat_seconds: float = 5.0
    stale_after_seconds: float = 60.0
    requeue_after_seconds: float = 600.0
    #: between the workers' recovery passes: a task committed but never published (its web
    #: process died, the broker was down) is queued within this and the 5 s grace
    recovery_interval_seconds: float = 5.0
    #: received tasks waiting for the store's writer (store.Intake); past it /receive gets 503
    intake_queue: int = 1024
    #: longest a receive waits for its row's commit before it answers 503
    intake_wait_seconds: float = 10.0
    #: limit on each statement of the store's writer (SQLite: its wait for a lock)
    statement_timeout_seconds: float = 5.0
    transfer_retries: int = 5
    retry_backoff_seconds: float = 2.0
    page_size: int = 50
    ui: bool = True  #: serve the dashboard at /ui/
    queue_name: str = DEFAULT_QUEUE
    log_format: str = "text"
    log_level: str = "info"
    log_tail_kb: int = 64
    retention_days: float | None = None
    pacifica: PacificaSettings = field(default_factory=PacificaSettings)
    http: HttpSettings = field(default_factory=HttpSettings)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some settings replaced (for the CLI's command-line options)."""
        return replace(self, **changes)

    @property
    def broker_dir(self) -> Path:
        """Folder of the embedded (filesystem) broker."""
        return self.state_dir / "broker"


def _read_file(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise SettingsError(CONFIG_FILE_VARIABLE, f"cannot read {path}: {exc.strerror}") from None
    except configparser.Error as exc:
        raise SettingsError(CONFIG_FILE_VARIABLE, f"{path} is not valid INI: {exc}") from None
    if not parser.has_section("dispatcher"):
        return {}
    return {key.lower(): value for key, value in parser.items("dispatcher")}


def _read_pacifica_cli_file(environ: Mapping[str, str]) -> dict[str, str]:
    """pacifica-cli's config file (``$HOME/.pacifica-cli/config.ini`` or ``CONFIG_FILE``)."""
    path = environ.get("PACIFICA_CLI_CONFIG") or environ.get("CONFIG_FILE")
    if not path:
        home = environ.get("HOME")
        path = os.path.join(home, ".pacifica-cli", "config.ini") if home else None
    if not path or not os.path.isfile(path):
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise SettingsError("PACIFICA_CLI_CONFIG", f"{path} is not valid INI: {exc}") from None
    values: dict[str, str] = {}
    for section in ("endpoints", "authentication"):
        if parser.has_section(section):
            prefix = "authentication_" if section == "authentication" else ""
            for key, value in parser.items(section):
                values[prefix + key.lower()] = value
    return values


def _pacifica(environ: Mapping[str, str], source: _Source) -> PacificaSettings:
    cli_file = _read_pacifica_cli_file(environ)
    cli = _Source(environ, cli_file)
    defaults = PacificaSettings()
    verify = cli.text("AUTHENTICATION_VERIFY", "true").strip().lower() not in _FALSE
    return PacificaSettings(
        upload_url=cli.text("UPLOAD_URL", defaults.upload_url),
        upload_status_url=cli.text("UPLOAD_STATUS_URL", defaults.upload_status_url),
        upload_policy_url=cli.text("UPLOAD_POLICY_URL", defaults.upload_policy_url),
        upload_validation_url=cli.text("UPLOAD_VALIDATION_URL", defaults.upload_validation_url),
        download_url=cli.text("DOWNLOAD_URL", defaults.download_url),
        download_policy_url=cli.text("DOWNLOAD_POLICY_URL", defaults.download_policy_url),
        auth_type=cli.text("AUTHENTICATION_TYPE", defaults.auth_type),
        auth_username=cli.optional("AUTHENTICATION_USERNAME"),
        auth_password=cli.optional("AUTHENTICATION_PASSWORD"),
        verify=verify,
        ingest_timeout_seconds=source.number(
            "DISPATCHER_INGEST_TIMEOUT", defaults.ingest_timeout_seconds, minimum=1
        ),
        cart_timeout_seconds=source.number(
            "DISPATCHER_CART_TIMEOUT", defaults.cart_timeout_seconds, minimum=1
        ),
        request_timeout_seconds=source.number(
            "DISPATCHER_REQUEST_TIMEOUT", defaults.request_timeout_seconds, minimum=1
        ),
    )


def _http(source: _Source) -> HttpSettings:
    defaults = HttpSettings()
    return HttpSettings(
        threads=source.integer("DISPATCHER_HTTP_THREADS", defaults.threads, minimum=1),
        connection_limit=source.integer(
            "DISPATCHER_HTTP_CONNECTION_LIMIT", defaults.connection_limit, minimum=8
        ),
        max_header_bytes=source.integer(
            "DISPATCHER_HTTP_MAX_HEADER_BYTES", defaults.max_header_bytes, minimum=1024
        ),
        max_headers=source.integer("DISPATCHER_HTTP_MAX_HEADERS", defaults.max_headers, 8),
        request_timeout_seconds=source.number(
            "DISPATCHER_HTTP_REQUEST_TIMEOUT", defaults.request_timeout_seconds, minimum=1
        ),
        idle_timeout_seconds=source.number(
            "DISPATCHER_HTTP_IDLE_TIMEOUT", defaults.idle_timeout_seconds, minimum=1
        ),
        shutdown_seconds=source.number(
            "DISPATCHER_HTTP_SHUTDOWN_TIMEOUT", defaults.shutdown_seconds, minimum=0
        ),
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from ``environ`` (default: ``os.environ``) and the config file."""
    environ = os.environ if environ is None else environ
    source = _Source(environ, _read_file(environ.get(CONFIG_FILE_VARIABLE)))
    defaults = Settings()
    state_dir = Path(source.text("DISPATCHER_STATE_DIR", str(defaults.state_dir))).absolute()
    timeout = source.number("DISPATCHER_MODEL_TIMEOUT", ModelLimits.timeout_seconds, minimum=1)
    limits = ModelLimits(
        timeout_seconds=timeout,
        memory_mb=source.integer("DISPATCHER_MODEL_MEMORY_MB", ModelLimits.memory_mb, minimum=16),
        cpu_seconds=source.integer("DISPATCHER_MODEL_CPU_SECONDS", int(timeout) + 1, minimum=1),
        file_size_mb=source.integer(
            "DISPATCHER_MODEL_FILE_SIZE_MB", ModelLimits.file_size_mb, minimum=1
        ),
        open_files=source.integer(
            "DISPATCHER_MODEL_OPEN_FILES", ModelLimits.open_files, minimum=16
        ),
        processes=source.integer("DISPATCHER_MODEL_PROCESSES", ModelLimits.processes, minimum=1),
        tmp_mb=source.integer("DISPATCHER_MODEL_TMP_MB", ModelLimits.tmp_mb, minimum=1),
    )
    if limits.tmp_mb * 2 > limits.memory_mb:
        raise SettingsError(
            "DISPATCHER_MODEL_TMP_MB",
            f"{limits.tmp_mb} is more than half of DISPATCHER_MODEL_MEMORY_MB={limits.memory_mb} "
            "(the sandbox's /tmp is part of the model's memory limit)",
        )
    data_dir = source.optional("DISPATCHER_DATA_DIR")
    output_dir = source.optional("DISPATCHER_OUTPUT_DIR")
    auth = source.choice("DISPATCHER_AUTH", "none", AUTH_MODES)
    settings = Settings(
        database_url=_absolute_sqlite(source.text("DATABASE_URL", defaults.database_url)),
        broker_url=source.text("BROKER_URL", defaults.broker_url),
        backend_url=source.optional("BACKEND_URL"),
        state_dir=state_dir,
        work_dir=Path(source.text("DISPATCHER_WORK_DIR", str(state_dir / "work"))).absolute(),
        keep_work=source.choice("DISPATCHER_KEEP_WORK", defaults.keep_work, KEEP_WORK_MODES),
        transfer=source.choice("DISPATCHER_TRANSFER", defaults.transfer, TRANSFER_KINDS),
        data_dir=Path(data_dir).absolute() if data_dir else None,
        output_dir=Path(output_dir).absolute() if output_dir else None,
        sandbox=source.choice("DISPATCHER_SANDBOX", defaults.sandbox, SANDBOX_MODES),
        sandbox_ro_paths=source.words("DISPATCHER_SANDBOX_RO_PATHS", ()),
        limits=limits,
        max_body_bytes=source.integer("DISPATCHER_MAX_BODY_BYTES", defaults.max_body_bytes, 1024),
        max_configs=source.integer("DISPATCHER_MAX_CONFIGS", defaults.max_configs, minimum=1),
        max_files=source.integer("DISPATCHER_MAX_FILES", defaults.max_files, minimum=1),
        max_output_mb=source.integer("DISPATCHER_MAX_OUTPUT_MB", defaults.max_output_mb, minimum=1),
        max_output_files=source.integer(
            "DISPATCHER_MAX_OUTPUT_FILES", defaults.max_output_files, minimum=1
        ),
        auth=auth,
        auth_username=source.optional("DISPATCHER_AUTH_USERNAME"),
        auth_password=source.optional("DISPATCHER_AUTH_PASSWORD"),
        auth_token=source.optional("DISPATCHER_AUTH_TOKEN"),
        accepted_sources=source.words("DISPATCHER_ACCEPTED_SOURCES", defaults.accepted_sources),
        heartbeat_seconds=source.number("DISPATCHER_HEARTBEAT", defaults.heartbeat_seconds, 0.1),
        stale_after_seconds=source.number(
            "DISPATCHER_STALE_AFTER", defaults.stale_after_seconds, minimum=1
        ),
        requeue_after_seconds=source.number(
            "DISPATCHER_REQUEUE_AFTER", defaults.requeue_after_seconds, minimum=1
        ),
        recovery_interval_seconds=source.number(
            "DISPATCHER_RECOVERY_INTERVAL", defaults.recovery_interval_seconds, minimum=0.1
        ),
        intake_queue=source.integer("DISPATCHER_INTAKE_QUEUE", defaults.intake_queue, minimum=1),
        intake_wait_seconds=source.number(
            "DISPATCHER_INTAKE_WAIT_SECONDS", defaults.intake_wait_seconds, minimum=0.1
        ),
        statement_timeout_seconds=source.number(
            "DISPATCHER_STATEMENT_TIMEOUT_SECONDS", defaults.statement_timeout_seconds, 0.1
        ),
        transfer_retries=source.integer("DISPATCHER_TRANSFER_RETRIES", defaults.transfer_retries),
        retry_backoff_seconds=source.number(
            "DISPATCHER_RETRY_BACKOFF", defaults.retry_backoff_seconds, minimum=0
        ),
        page_size=source.integer("DISPATCHER_PAGE_SIZE", defaults.page_size, minimum=1),
        ui=source.boolean("DISPATCHER_UI", defaults.ui),
        queue_name=_queue_name(source.text("DISPATCHER_QUEUE", defaults.queue_name)),
        log_format=source.choice("DISPATCHER_LOG_FORMAT", defaults.log_format, LOG_FORMATS),
        log_level=source.choice("DISPATCHER_LOG_LEVEL", defaults.log_level, LOG_LEVELS),
        log_tail_kb=source.integer("DISPATCHER_LOG_TAIL_KB", defaults.log_tail_kb, minimum=1),
        retention_days=_retention(source),
        pacifica=_pacifica(environ, source),
        http=_http(source),
    )
    _check_auth(settings)
    return settings


_OWN_PREFIXES = ("DISPATCHER_", "DATABASE_URL", "BROKER_URL", "BACKEND_URL")


def environment_for(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """An environment from which :func:`load_settings` reads ``settings`` back.

    For child processes (the ``standalone`` worker, tests): ``base`` minus our own variables,
    plus ours. Pacifica's variables in ``base`` pass through unchanged.
    """
    env = {key: value for key, value in base.items() if not key.startswith(_OWN_PREFIXES)}
    limits = settings.limits
    values: dict[str, object] = {
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": settings.broker_url,
        "BACKEND_URL": settings.backend_url or "",
        "DISPATCHER_STATE_DIR": settings.state_dir,
        "DISPATCHER_WORK_DIR": settings.work_dir,
        "DISPATCHER_KEEP_WORK": settings.keep_work,
        "DISPATCHER_TRANSFER": settings.transfer,
        "DISPATCHER_DATA_DIR": settings.data_dir or "",
        "DISPATCHER_OUTPUT_DIR": settings.output_dir or "",
        "DISPATCHER_SANDBOX": settings.sandbox,
        "DISPATCHER_SANDBOX_RO_PATHS": ",".join(settings.sandbox_ro_paths),
        "DISPATCHER_MODEL_TIMEOUT": limits.timeout_seconds,
        "DISPATCHER_MODEL_MEMORY_MB": limits.memory_mb,
        "DISPATCHER_MODEL_CPU_SECONDS": limits.cpu_seconds,
        "DISPATCHER_MODEL_FILE_SIZE_MB": limits.file_size_mb,
        "DISPATCHER_MODEL_OPEN_FILES": limits.open_files,
        "DISPATCHER_MODEL_PROCESSES": limits.processes,
        "DISPATCHER_MODEL_TMP_MB": limits.tmp_mb,
        "DISPATCHER_MAX_OUTPUT_MB": settings.max_output_mb,
        "DISPATCHER_MAX_OUTPUT_FILES": settings.max_output_files,
        "DISPATCHER_HEARTBEAT": settings.heartbeat_seconds,
        "DISPATCHER_STALE_AFTER": settings.stale_after_seconds,
        "DISPATCHER_REQUEUE_AFTER": settings.requeue_after_seconds,
        "DISPATCHER_RECOVERY_INTERVAL": settings.recovery_interval_seconds,
        "DISPATCHER_INTAKE_QUEUE": settings.intake_queue,
        "DISPATCHER_INTAKE_WAIT_SECONDS": settings.intake_wait_seconds,
        "DISPATCHER_STATEMENT_TIMEOUT_SECONDS": settings.statement_timeout_seconds,
        "DISPATCHER_TRANSFER_RETRIES": settings.transfer_retries,
        "DISPATCHER_RETRY_BACKOFF": settings.retry_backoff_seconds,
        "DISPATCHER_QUEUE": settings.queue_name,
        "DISPATCHER_LOG_FORMAT": settings.log_format,
        "DISPATCHER_LOG_LEVEL": settings.log_level,
        "DISPATCHER_LOG_TAIL_KB": settings.log_tail_kb,
        "DISPATCHER_RETENTION_DAYS": ""
        if settings.retention_days is None
        else settings.retention_days,
    }
    env.update({key: str(value) for key, value in values.items() if value != ""})
    return env


def _absolute_sqlite(url: str) -> str:
    """Pin a relative SQLite path to the current directory, so web and worker agree."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(Path(url[len(prefix) :]).absolute())
    return url


def _queue_name(name: str) -> str:
    """The queue name, checked: AMQP allows 255 bytes of printable text."""
    name = name.strip()
    if len(name.encode("utf-8")) > 255 or not name.isprintable() or " " in name:
        raise SettingsError(
            "DISPATCHER_QUEUE", f"{name!r} is not a queue name (no spaces, <= 255 bytes)"
        )
    return name


def _retention(source: _Source) -> float | None:
    """Days a final task is kept; None (the default, and "off") keeps them for ever."""
    raw = source.raw("DISPATCHER_RETENTION_DAYS")
    if raw is None or raw.strip().lower() in ("", "off", "none"):
        return None
    return source.number("DISPATCHER_RETENTION_DAYS", 0.0, minimum=0)


def _check_auth(settings: Settings) -> None:
    if settings.auth == "basic" and not (settings.auth_username and settings.auth_password):
        raise SettingsError(
            "DISPATCHER_AUTH", "basic needs DISPATCHER_AUTH_USERNAME and DISPATCHER_AUTH_PASSWORD"
        )
    if settings.auth == "bearer" and not settings.auth_token:
        raise SettingsError("DISPATCHER_AUTH", "bearer needs DISPATCHER_AUTH_TOKEN")
