"""Reading every setting once: :func:`load_settings` and its checks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import SettingsError
from .shapes import (
    AUTH_MODES,
    KEEP_WORK_MODES,
    LOG_FORMATS,
    LOG_LEVELS,
    SANDBOX_MODES,
    TRANSFER_KINDS,
    HttpSettings,
    ModelLimits,
    PacificaSettings,
    Settings,
)
from .source import CONFIG_FILE_VARIABLE, FALSE_WORDS, Source, read_file, read_pacifica_cli_file


def _pacifica(environ: Mapping[str, str], source: Source) -> PacificaSettings:
    cli_file = read_pacifica_cli_file(environ)
    cli = Source(environ, cli_file)
    defaults = PacificaSettings()
    verify = cli.text("AUTHENTICATION_VERIFY", "true").strip().lower() not in FALSE_WORDS
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


def _http(source: Source) -> HttpSettings:
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
    source = Source(environ, read_file(environ.get(CONFIG_FILE_VARIABLE)))
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
        publish_timeout_seconds=source.number(
            "DISPATCHER_PUBLISH_TIMEOUT_SECONDS", defaults.publish_timeout_seconds, 0.1
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


def _retention(source: Source) -> float | None:
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
